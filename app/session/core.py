"""A session: one browser's world, its frames and its runner, assembled from one mixin per concern.

    world.py     `World`: the simulation, its timeline, checkpoints, rewinds and forks
    frames.py    `FramesMixin`, `Pane`: hello, snapshot and events frames, and what the page was
                 told about each world
    compare.py   the compare variants: names resolved against the adapter's offer, worlds built
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

from .. import share
from ..lessons import LessonFile
from ..limits import check_replay, check_scenario
from ..outbox import Outbox
from ..protocols import get_adapter
from ..settings import Settings
from .compare import build_worlds
from .controls import ControlsMixin
from .frames import FramesMixin, Pane
from .replay import ReplayGate, ReplayMixin
from .runner import RunnerMixin
from .world import World

# A trailing world runs to the pacer's moment whatever it costs (a budget this large never
# stops it; it also keeps `World.advance` from taking a checkpoint the tick did not plan for).


class Session(RunnerMixin, ControlsMixin, ReplayMixin, FramesMixin):
    def __init__(self, sid: str, settings: Settings, lessons: dict[str, LessonFile],
                 scenario: Scenario, lesson: str | None = None, speed: float | None = None,
                 until_ms: float = 0.0, playing: bool | None = None,
                 variants: list[tuple[str, dict]] | None = None):
        self.id = sid
        self.settings = settings
        self.lessons = lessons
        self.seq = 0
        # With recipes in a shared broker (app/rooms.py): the recipe is durable up to this frame
        # `seq`, and the page was last told `dur_told` (the next frame tells it more).
        self.durable_seq = 0
        self.dur_told = 0
        self.outbox = Outbox()
        self.ws = None
        self._raw_cache = None  # (ws, its raw write path or None): runner.flush
        self.quiet_ticks = 0  # ticks in a row whose empty frame was not sent (queue_events)
        self._end_cache = None  # (scenario, worlds, where live play stops): runner._shareable_end
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
        # One pane per world (a world and what the page was told of it); `pane` is the focused
        # one, through which `sim`, `told`, `job`... are read (see `_each`). Compare mode holds
        # 2-4, each the same scenario under one of `variants` (name, config overrides).
        self.panes: list[Pane] = []
        self.pane: Pane | None = None
        self.variants: list[tuple[str, dict]] = []
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
        self.click_stats = None  # likewise: a deque of (to relay, relay, send) per click
        self.clicks_at: list[float] = []  # benchmarks only: when each click not yet sent came in
        self.phase_s = 0.0  # where in each frame interval this session ticks (set by the manager)
        self._quantum_ms = 1.0  # compare mode's round of worlds in unison, in simulated ms (adapts)
        self.gate: ReplayGate | None = None  # set by the manager; None: replay whenever due
        self.queued_at = 0  # place in the replay queue last told (0: replaying or no job)
        self.load(scenario, lesson, until_ms=until_ms, playing=playing, variants=variants)

    # --- building and rebuilding the world -------------------------------------------------------
    def load(self, scenario: Scenario, lesson: str | None, until_ms: float = 0.0,
             playing: bool | None = None, variants: list[tuple[str, dict]] | None = None) -> None:
        """Start the session over on `scenario` (its actions become the timeline), at `until_ms`;
        with `variants` (2-4 of (name, config overrides)), as that many worlds in unison.

        The replay to `until_ms` is a job for the runner: `hello` goes out at once, progress
        frames while it runs, and the snapshot when it is done."""
        worlds = build_worlds(scenario, variants or [])
        for sc in worlds:
            check_scenario(sc, self.settings)
        check_replay(scenario, until_ms, self.settings, worlds=len(worlds))
        self._end_job()
        self.pause_at = None
        self.adapter = get_adapter(scenario.protocol)
        self.protocol = get_protocol(scenario.protocol)
        self.lesson = lesson
        self.origin = scenario  # what the variants apply to (its actions are every world's)
        self.variants = list(variants or [])
        names = [name for name, _ in self.variants] or [None]
        self.panes = [Pane(World(sc, self.settings), name) for sc, name in zip(worlds, names)]
        self.pane = self.panes[0]
        for _ in self._each():
            self._attach()
        if playing is not None:
            self.playing = playing
        self._resync_refs()
        self.outbox.clear()
        self._snapshot_pending = False
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

    def _each(self, first: int = 0):
        """Focus each world in turn from the `first` (yielding its pane), then the first again:
        what is read through the session (`sim`, `told`, `job`...) is then that world's."""
        try:
            for p in self.panes[first:]:
                self.pane = p
                yield p
        finally:
            if self.panes:
                self.pane = self.panes[0]

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
        """Run every world to `target_ms` in unison (`World.advance` for one). With a budget or
        a deadline, the world that cost most last time goes first with its share of them (the
        pacer) and the others follow to wherever it stopped, so all stop at the same `now_ms`;
        each trailing world costs about what the pacer did, so N worlds share one tick's budget."""
        if len(self.panes) == 1:
            return self.world.advance(target_ms, budget, deadline)
        if budget is None and deadline is None:
            return all(p.world.advance(target_ms) for p in self.panes)
        return self._lockstep(target_ms, budget, deadline)

    def _lockstep(self, target_ms: float, budget: int | None, deadline: float | None) -> bool:
        """Every world to `target_ms` in rounds of a short stretch of simulated time (`quantum`),
        all worlds to the same moment each round, until the budget (events, summed) or the
        deadline is spent: they always stop at the same `now_ms`, and no world runs unbounded
        while following another (a costly world costs its own events, round by round). The
        quantum adapts so a round costs about a sixteenth of the budget. True when there."""
        e0 = self.events_total()
        per_round = max(64, (budget if budget is not None else self.settings.max_events_per_tick) // 16)
        t = self.sim.now_ms
        if t >= target_ms:
            for p in self.panes:
                p.world.advance(target_ms)
            return True
        while t < target_ms:
            nxt = min(target_ms, round(t + self._quantum_ms, 3))
            if nxt <= t:
                nxt = target_ms
            before = self.events_total()
            for p in self.panes:
                p.world.advance(nxt)
            t = nxt
            cost = self.events_total() - before
            if cost > per_round and self._quantum_ms > 0.002:
                self._quantum_ms /= 2
            elif cost < per_round // 4 and self._quantum_ms < 60_000:
                self._quantum_ms *= 2
            if t >= target_ms:
                return True
            if budget is not None and self.events_total() - e0 >= budget:
                return False
            if deadline is not None and time.perf_counter() >= deadline:
                return False
        return True

    def events_total(self) -> int:
        """The events every world has processed (the caps on a run's work apply to the sum)."""
        panes = self.panes
        return panes[0].world.sim.events if len(panes) == 1 else sum(p.world.sim.events for p in panes)

    def step(self, count: int) -> None:
        """Pause and process exactly `count` events. In compare mode: `count` times, every world
        in unison to the first world's next event (so each step is one event of the first
        world, and whatever the others do by that moment), within one tick's budget of events
        in all (a costly world beside a cheap one cannot make a step unbounded)."""
        self.playing = False
        if len(self.panes) == 1:
            self.world.step(count)
        else:
            budget = self.settings.max_events_per_tick
            e0 = self.events_total()
            for _ in range(count):
                nxt = self.world.next_due_ms()
                if nxt is None:
                    break
                left = budget - (self.events_total() - e0)
                if left <= 0 or not self._lockstep(nxt, left, None):
                    break
            for p in self.panes:
                p.world.horizon = max(p.world.horizon, p.world.sim.now_ms)
        self._resync_refs()

    def act(self, data: dict) -> dict:
        """A click, recorded on the timeline (forking it) and applied now, even when paused; in
        compare mode in every world at the same moment, once every world has accepted it."""
        if len(self.panes) > 1:
            for p in self.panes:
                p.world.check_action(data, p.variant)
        recs = [p.world.act(data) for p in self.panes]
        self.new_acts.append(recs[0])
        self._resync_refs()
        return recs[0]

    def share_payload(self) -> str:
        """The share link: the origin scenario, the actions, the moment and the variants."""
        if len(self.panes) == 1:
            return self.world.share_payload(self.lesson)
        sc = self.origin.with_(actions=list(self.sim.actions))
        return share.encode(sc, self.sim.now_ms, self.lesson, variants=self.variants)

    def world_payloads(self) -> list[str]:
        """Each world's own single-world share link (its variant applied), in order."""
        return [p.world.share_payload(self.lesson) for p in self.panes]

    def _resync_refs(self) -> None:
        self.sim_ref = self.sim.now_ms
        self.wall_ref = time.monotonic()

    def _clamp_speed(self, v: float) -> float:
        return min(self.settings.max_speed, max(self.settings.min_speed, v))
