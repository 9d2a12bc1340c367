"""A world's rewind checkpoints stay under their byte budget (PLAYGROUND_MAX_CHECKPOINT_BYTES),
and a rewind from the thinned checkpoints reaches exactly the state a straight run does."""

from __future__ import annotations

import orjson

from app.session.world import World
from app.settings import ROOT, Settings
from engine.scenario import parse_scenario
from engine.sim import Simulation


def _lesson():
    return parse_scenario(orjson.loads((ROOT / "scenarios" / "leader_crash_replication.json")
                                       .read_bytes()))


def test_checkpoints_are_thinned_to_their_byte_budget_and_rewinds_stay_exact():
    budget = 256 * 1024
    st = Settings(checkpoint_every_ms=250, max_checkpoint_bytes=budget)
    w = World(_lesson(), st)
    unbounded = World(_lesson(), Settings(checkpoint_every_ms=250))
    sizes = []
    for t in range(250, 30_001, 250):
        w.advance(float(t))
        unbounded.advance(float(t))
        sizes.append(sum(len(c[2]) for c in w.checkpoints))
    biggest = max(len(c[2]) for c in w.checkpoints)
    assert max(sizes) <= budget + biggest  # thinned as soon as one checkpoint takes it over
    assert len(w.checkpoints) >= 2 and w.checkpoints[0][0] == 0.0
    assert sum(len(c[2]) for c in unbounded.checkpoints) > 2 * budget  # the budget did it
    for back in (700.0, 12_345.0, 29_000.0):
        w.rewind(back)
        w.advance(29_500.0)
        straight = Simulation(_lesson())
        straight.run_until(29_500.0)
        assert w.sim.digest() == straight.digest()
