"""One browser session: a simulated world, its timeline, and the runner that streams its frames.

The session is split by concern (see `core.py` for the map): the world and its timeline
(`World`), frames, controls, replay jobs and their admission, the runner, the rate limit. None of
them knows a protocol; the scenario's adapter (app/protocols/) does.

Compare mode (later) holds two worlds in lock step. Everything that belongs to one world is
already in one object: `World` (simulation, timeline, checkpoints, horizon) plus what the frames
told the page about it (`FramesMixin`'s `told`, `shown`, `msg_to`, `pending_recs`, fed by that
world's observer). A compare session keeps a list of (World, told-state) pairs under one runner,
one outbox, one clock and one replay job: each tick advances every world to the same simulated
target (`World.advance(target, deadline=...)` with the tick's budget shared out, stopping all at
the slowest one's `now_ms` so they never drift), a click is validated against each world and
recorded in each timeline at the same `at` (`World.act`), a seek rewinds each from its own
checkpoints, and each frame carries the worlds side by side (e.g. `"worlds": [events-a,
events-b]`). Determinism holds per world, so the two runs are the same seed and actions under two
configs (or two protocols) exactly.
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
