"""A session: one browser's world, its frames and its runner, assembled from one mixin per concern.

    world.py     `World`: the simulation, its timeline, checkpoints, rewinds and forks
    frames.py    `FramesMixin`: hello, snapshot and events frames, and what the page was told
    controls.py  `ControlsMixin`: inbound frames, validated and applied
    replay.py    `ReplayMixin`, `Replay`, `ReplayGate`: replay jobs and their admission
    runner.py    `RunnerMixin`: pacing against the wall clock, the socket
    ratelimit.py `TokenBucket`: the per-connection inbound rate

Nothing here knows a protocol: the adapter (`self.adapter`, app/protocols/) does.
"""

from __future__ import annotations

import asyncio
import secrets
import time

from engine.protocols import get_protocol
from engine.scenario import Scenario

from ..lessons import LessonFile
from ..limits import check_replay, check_scenario
from ..outbox import Outbox
from ..protocols import get_adapter
from ..settings import Settings
from .controls import ControlsMixin
from .frames import FramesMixin
from .replay import ReplayGate, ReplayMixin
from .runner import RunnerMixin
from .world import World


class Session(RunnerMixin, ControlsMixin, ReplayMixin, FramesMixin):
    def __init__(self, sid: str, settings: Settings, lessons: dict[str, LessonFile],
                 scenario: Scenario, lesson: str | None = None, speed: float | None = None,
                 until_ms: float = 0.0, playing: bool | None = None):
        self.id = sid
        self.settings = settings
        self.lessons = lessons
        self.seq = 0
        self.outbox = Outbox()
        self.ws = None
        self.task: asyncio.Task | None = None
        self.generation = 0  # bumped at each attach: only the runner of the latest one runs
        # Attaches (a reload, another tab) are one at a time: see SessionManager.attach.
        self.attach_lock = asyncio.Lock()
        # Only the page that opened the session holds this; reattaching needs it (never in a URL).
        self.secret = secrets.token_urlsafe(18)
        self.client: str | None = None  # the address that opened it (the per-address cap)
        self.created_at = time.monotonic()
        # While the runner waits on the socket: since when (the manager closes a connection whose
        # sends stay stuck, see `stalled`). None when it is not sending.
        self.sending_since: float | None = None
        self._snapshot_pending = False  # a snapshot is in the outbox (repeated requests collapse)
        self._lin_told: bool | None = True  # the linearizability result the page was last told
        self._wake: asyncio.Future | None = None
        self.closed = False
        self.last_input = time.monotonic()
        self.detached_at: float | None = None
        self.speed = self._clamp_speed(speed if speed is not None else settings.default_speed)
        self.playing = True
        self.pause_at: float | None = None  # `play` with `until`: where live play stops
        self.behind = False
        self.sim_ref = 0.0
        self.wall_ref = 0.0
        self._lin_checked_at: float | None = None  # never: the first search is due at once
        self.stats: list[float] | None = None  # set by the manager when bench_stats is on
        self.phase_s = 0.0  # where in each frame interval this session ticks (set by the manager)
        self.gate: ReplayGate | None = None  # set by the manager; None: replay whenever due
        self.job: Replay | None = None
        self.queued_at = 0  # place in the replay queue last told (0: replaying or no job)
        # One bound method, kept: `unsubscribe` compares by identity, and every `self._on_record`
        # is a new object.
        self._observer = self._on_record
        self.load(scenario, lesson, until_ms=until_ms, playing=playing)

    # --- building and rebuilding the world -------------------------------------------------------
    def load(self, scenario: Scenario, lesson: str | None, until_ms: float = 0.0,
             playing: bool | None = None) -> None:
        """Start the session over on `scenario` (its actions become the timeline), at `until_ms`.

        The replay to `until_ms` is a job for the runner: `hello` goes out at once, progress
        frames while it runs, and the snapshot when it is done."""
        check_scenario(scenario, self.settings)
        check_replay(scenario, until_ms, self.settings)
        self._end_job()
        self.pause_at = None
        self.adapter = get_adapter(scenario.protocol)
        self.protocol = get_protocol(scenario.protocol)
        self.lesson = lesson
        self.world = World(scenario, self.settings)
        self._attach()
        if playing is not None:
            self.playing = playing
        self._resync_refs()
        self.outbox.clear()
        self._snapshot_pending = False
        self.pending_recs.clear()
        self.new_acts: list[dict] = []  # clicks recorded since the last `events` frame
        self.queue_hello()
        first = next((st.until_ms for st in scenario.steps if st.until_ms is not None), None)
        if until_ms == 0 and first is not None:
            self.pause_at = first  # a stepped lesson plays to its first pause point
        if until_ms > 0:
            # The replay to `until_ms` (a share link, an import) is told in words when it is done.
            self.playing = False
            self._start_job("load", until_ms, seen_ms=-1.0)
        else:
            self.queue_snapshot()

    # The world's state, read (and, for tests and the runner, set) through the session.
    @property
    def sim(self):
        return self.world.sim

    @sim.setter
    def sim(self, value) -> None:
        self.world.sim = value

    @property
    def scenario(self) -> Scenario:
        return self.world.scenario

    @property
    def base(self) -> Scenario:
        return self.world.base

    @property
    def timeline(self) -> list[dict]:
        return self.world.timeline

    @property
    def checkpoints(self) -> list:
        return self.world.checkpoints

    @property
    def horizon(self) -> float:
        return self.world.horizon

    @horizon.setter
    def horizon(self, value: float) -> None:
        self.world.horizon = value

    def advance(self, target_ms: float, budget: int | None = None,
                deadline: float | None = None) -> bool:
        return self.world.advance(target_ms, budget, deadline)

    def step(self, count: int) -> None:
        """Pause and process exactly `count` events."""
        self.playing = False
        self.world.step(count)
        self._resync_refs()

    def act(self, data: dict) -> dict:
        """A click, recorded on the timeline (forking it) and applied now, even when paused."""
        rec = self.world.act(data)
        self.new_acts.append(rec)
        self._resync_refs()
        return rec

    def share_payload(self) -> str:
        return self.world.share_payload(self.lesson)

    def _resync_refs(self) -> None:
        self.sim_ref = self.sim.now_ms
        self.wall_ref = time.monotonic()

    def _clamp_speed(self, v: float) -> float:
        return min(self.settings.max_speed, max(self.settings.min_speed, v))
