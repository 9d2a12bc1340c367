"""One browser session: a simulated world, its timeline, and the runner that streams its frames.

The session is split by concern (see `core.py` for the map): the world and its timeline
(`World`), frames, controls, replay jobs and their admission, the runner, the rate limit. None of
them knows a protocol; the scenario's adapter (app/protocols/) does.

Compare mode holds 2-4 worlds in unison: the same scenario under named config overrides (the
adapter's `compare_variants`, resolved in `compare.py`). Everything that belongs to one world is in
one `Pane` (frames.py): its `World` (simulation, timeline, checkpoints, horizon) plus what the
frames told the page about it (`told`, `shown`, `msg_to`, `pending_recs` fed by that world's own
observer, and its part of the replay job). The session keeps `panes` under one runner, one outbox,
one clock and one replay job, and reads a world's state through the focused pane (`self.pane`;
`Session._each` focuses each in turn), so one body of frame, replay and control code serves one
world or four. A tick advances every world to the same target with the budget shared out
(`Session.advance`: the costliest world goes first with 1/N of it, the others run to exactly where
it stopped, so they never drift); a click is checked against every world, then recorded in each
timeline at the same `at` (`World.check_action`, `World.act`); a seek rewinds each from its own
checkpoints, in one job whose slices the worlds share; and each frame carries the first world's
fields as a single world's frame would, with the others' parts in `worlds`
(docs/ws-protocol.md, "Compare mode"). Determinism holds per world, so each world is exactly a
standalone run of its own config with the same seed and actions.
"""

from __future__ import annotations

import random

from engine.scenario import Scenario, parse_scenario

from ..protocols import DEFAULT_PROTOCOL, get_adapter, live_workload
from ..settings import Settings
from .compare import resolve_variants
from .core import Session
from .ratelimit import TokenBucket
from .replay import Replay, ReplayGate
from .timefmt import fmt_ms
from .world import World


def default_scenario(settings: Settings, seed: int | None = None,
                     protocol: str = DEFAULT_PROTOCOL) -> Scenario:
    """A fresh live session of `protocol`, as its adapter describes it."""
    if seed is None:
        seed = random.SystemRandom().randrange(1, 1_000_000)
    return parse_scenario(get_adapter(protocol).default_scenario(settings, seed))


__all__ = ["Replay", "ReplayGate", "Session", "TokenBucket", "World", "default_scenario", "fmt_ms",
           "live_workload", "resolve_variants"]
