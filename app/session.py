"""One browser session: a simulated cluster, its timeline, and the runner that streams frames.

The timeline is the list of every action of the current branch (the scenario's own and the user's
clicks), each with its simulated time `at`. The simulation is built from the scenario *without*
actions; the session pushes each action into it just before the clock reaches its `at`. So:

- playing forward after a rewind re-enacts the same future (like a video) until the user acts;
- acting after a rewind forks: the actions later than now are dropped, and the branch goes on;
- a share link is the scenario plus `sim.actions` (what has been applied) plus the current time,
  and replaying it reproduces the exact state (same `digest()`).

Rewinds restore the latest checkpoint (a `Simulation.snapshot()`, taken every
`checkpoint_every_ms` of simulated time, thinned when too many) and replay from there.

No request may hold the event loop (which every session shares) for long. A replay (opening a share
link, `load`, a seek either way) is a `Replay` job that the runner advances in slices of at most
`replay_slice_ms` of CPU, yielding between slices and telling the page how far it has got
(`progress` frames); at most `max_concurrent_replays` sessions replay at once (the rest wait their
turn, see `ReplayGate`). Live play has a CPU budget per tick (`tick_budget_ms`): a session that
cannot keep up runs slower and says it is `behind` instead of stalling the others. The state a job
ends in is exactly the state a synchronous replay reaches: slicing only decides where the loop
stops between two events, never what happens.

The runner is the only writer to the socket: input handlers change the world and queue frames in
the outbox, then wake the runner, so frames leave in `seq` order. Every frame is serialised once
with orjson.
"""

from __future__ import annotations

import asyncio
import bisect
import collections
import logging
import math
import heapq
import hmac
import random
import secrets
import time
from typing import Any

import orjson

from engine.protocols import get_protocol
from engine.scenario import Scenario, ScenarioError
from engine.sim import Simulation

from . import share
from .lessons import LessonFile
from .limits import check_replay, check_scenario, decode_share, quote
from .outbox import Outbox, wire
from .transport import close_or_abort
from .protocols import get_adapter
from .settings import Settings
from .wire import (ActionIn, BadInput, Check, Configure, Lesson, Load, NewSeed, Pause, Play, Reset,
                   Resync, Seek, Share, Speed, Step, parse_inbound)

log = logging.getLogger("playground.session")

# Controls that rebuild the world: they count `ws_heavy_cost` frames against the rate limit.
HEAVY = (Load, Reset, Configure, NewSeed, Lesson)


# A timer may wake us a little before its deadline: uvloop's clock and timers count whole
# milliseconds. Within this of the due time the tick is due; otherwise the runner would spin
# through zero-length waits until the clock ticks over (which cost a whole core at 500 sessions).
_EARLY_S = 0.002


def _wake_up(fut: asyncio.Future) -> None:
    if not fut.done():
        fut.set_result(None)


# How often (in events) the replay and tick loops look at the clock: about every 0.5 ms of CPU.
_CLOCK_EVERY = 50


class Replay:
    """A replay in progress: the session runs towards `target_ms` a slice at a time.

    The page has been told what happened up to `seen_ms`; what the job finds after that is told in
    words when it ends (the last `words_per_frame` of them). A rewind replays from a checkpoint
    what the page has already seen: that only brings each node's last-told state up to date."""

    __slots__ = ("kind", "target_ms", "from_ms", "seen_ms", "words", "skipped", "told_at",
                 "events0")

    def __init__(self, kind: str, from_ms: float, target_ms: float, seen_ms: float, cap: int,
                 events0: int = 0):
        self.kind = kind  # "load" | "seek"
        self.events0 = events0  # the world's event count when the job began (its cost so far)
        self.from_ms = from_ms
        self.target_ms = target_ms
        self.seen_ms = seen_ms
        self.words: collections.deque = collections.deque(maxlen=cap)
        self.skipped = 0
        self.told_at = 0.0  # wall time of the last progress frame

    def done_fraction(self, now_ms: float) -> float:
        span = self.target_ms - self.from_ms
        return 1.0 if span <= 0 else max(0.0, min(1.0, (now_ms - self.from_ms) / span))


def fmt_ms(ms: float) -> str:
    """Simulated time as m:ss.mmm (or s.mmm s under a minute), as the page shows it."""
    if ms < 60_000:
        return f"{ms / 1000:.3f} s"
    m, rest = divmod(ms, 60_000)
    return f"{int(m)}:{rest / 1000:06.3f}"


class TokenBucket:
    """A per-connection rate limit on inbound frames: `rate` tokens per second, at most `burst`
    saved up. `told` is set once the page has been told it is over the limit."""

    __slots__ = ("rate", "burst", "tokens", "at", "told")

    def __init__(self, rate: float, burst: float):
        self.rate = rate
        self.burst = burst
        self.tokens = float(burst)
        self.at = time.monotonic()
        self.told = False

    def take(self, n: float = 1) -> bool:
        now = time.monotonic()
        self.tokens = min(self.burst, self.tokens + (now - self.at) * self.rate)
        self.at = now
        if self.tokens >= n:
            self.tokens -= n
            return True
        return False


class ReplayGate:
    """Replays take turns: at most `slots` run at once, and the one that has had the least CPU
    goes first (least attained service; ties by arrival). A runner gives its slot back after each
    slice (before it waits on its socket: a page that stops reading must not hold a slot), and
    asks again for the next; so a newcomer's light link waits at most about one slice per slot
    however heavy the others are, and heavy ones share the rest. A replay that keeps its slot
    across slices (an export's loop) yields after `quantum_s` of CPU while others wait. Shared by
    the manager's sessions and the trace exports; non-blocking: a waiting job asks again at its
    next tick. Cheap with many waiters: admission looks at the `free` least-served waiters only
    (O(n)), and the place in the queue told to a page comes from an order recomputed at most
    every `RANK_EVERY_S`."""

    RANK_EVERY_S = 0.5
    STALE_S = 2.0  # a waiter that has not asked for this long is forgotten (its page went away)

    def __init__(self, slots: int, quantum_s: float = 0.25):
        self.slots = slots
        self.quantum_s = quantum_s
        self.active: dict[str, float] = {}  # id -> CPU it had used when its turn began
        self.waiting: dict[str, int] = {}  # id -> arrival number
        self.seen: dict[str, float] = {}  # id -> when it last asked (monotonic)
        self.used: dict[str, float] = {}  # CPU seconds of replay so far, per job
        self._arrivals = 0
        self._rank: dict[str, int] = {}
        self._rank_at = -1e9

    def _key(self, j: str):
        return (self.used.get(j, 0.0), self.waiting[j])

    def enter(self, sid: str) -> int:
        """0 when `sid` may replay now, else its place in the queue (1 = next)."""
        if sid in self.active:
            return 0
        now = time.monotonic()
        self.seen[sid] = now
        if sid not in self.waiting:
            self._arrivals += 1
            self.waiting[sid] = self._arrivals
            self.used.setdefault(sid, 0.0)
        free = self.slots - len(self.active)
        if free > 0:
            stale = [j for j in self.waiting if now - self.seen.get(j, now) > self.STALE_S]
            for j in stale:
                self.release(j)
            if sid in heapq.nsmallest(free, self.waiting, key=self._key):
                del self.waiting[sid]
                self.active[sid] = self.used[sid]
                return 0
        if now - self._rank_at >= self.RANK_EVERY_S:
            self._rank = {j: i for i, j in enumerate(sorted(self.waiting, key=self._key))}
            self._rank_at = now
        return self._rank.get(sid, len(self._rank)) - max(free, 0) + 1

    def charge(self, sid: str, cpu_s: float) -> None:
        """`sid` spent `cpu_s` replaying; at the end of its turn it yields to those waiting."""
        self.used[sid] = self.used.get(sid, 0.0) + cpu_s
        began = self.active.get(sid)
        if began is not None and self.used[sid] - began >= self.quantum_s and self.waiting:
            del self.active[sid]

    def release(self, sid: str) -> None:
        """Give the slot back (or stop waiting) without forgetting the CPU used."""
        self.active.pop(sid, None)
        self.waiting.pop(sid, None)
        self.seen.pop(sid, None)

    def leave(self, sid: str) -> None:
        """The job's session is gone (dropped or reaped): forget it."""
        self.release(sid)
        self.used.pop(sid, None)


class Session:
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
        self.adapter = get_adapter(scenario.protocol)
        self.protocol = get_protocol(scenario.protocol)
        self.lesson = lesson
        self.scenario = scenario
        self.timeline: list[dict] = [a for a in scenario.to_dict().get("actions", [])]
        self.timeline.sort(key=lambda a: a["at"])
        self.base = scenario.with_(actions=[])
        self.sim = Simulation(self.base)
        self.ai = 0  # timeline[:ai] have been pushed into the simulation
        self.checkpoints: list[tuple[float, int, bytes | None]] = []  # None: the base at t = 0
        self.checkpoint_every_ms = self.settings.checkpoint_every_ms
        self._attach()
        self._checkpoint()
        self.horizon = self.sim.now_ms
        if playing is not None:
            self.playing = playing
        self._resync_refs()
        self.outbox.clear()
        self._snapshot_pending = False
        self.pending_recs.clear()
        self.new_acts: list[dict] = []  # clicks recorded since the last `events` frame
        self.queue_hello()
        if until_ms > 0:
            # The replay to `until_ms` (a share link, an import) is told in words when it is done.
            self.playing = False
            self._start_job("load", until_ms, seen_ms=-1.0)
        else:
            self.queue_snapshot()

    def _attach(self, messages: bool = True) -> None:
        """(Re)subscribe to the simulation: observers are not part of snapshots."""
        self.pending_recs: list[dict] = []
        self.sim.subscribe(self._observer, messages=messages)
        self.shown: set[int] = set()
        self.msg_to = {mid: f[1] for mid, f in self.sim.flight.items()}
        self.told: dict[str, tuple] = {}
        for nid, v in self.sim.views().items():
            role = "down" if v["status"] == "down" else ("follower" if v["role"] == "pre-candidate" else v["role"])
            self.told[nid] = (role, v["term"], v["voted_for"], v["commit"])
        self.violation_count = self._violation_count()
        self.lin = next((c for c in self.sim.checkers if c.name == "Linearizability"), None)

    def _on_record(self, rec: dict) -> None:
        self.pending_recs.append(rec)

    def _violation_count(self) -> int:
        return sum(len(c.violations) for c in self.sim.checkers)

    def _checkpoint(self) -> None:
        cps = self.checkpoints
        t0 = time.perf_counter()
        if not cps and self.sim.now_ms == 0 and self.ai == 0:
            # The world at t = 0 is the base scenario itself (seed + scenario determine it):
            # rebuilding it is cheaper than pickling it, and a new session costs half as much.
            cps.append((0.0, 0, None))
            return
        cps.append((self.sim.now_ms, self.ai, self.sim.snapshot()))
        if (time.perf_counter() - t0) * 1000 > self.settings.checkpoint_max_ms:
            # A checkpoint holds the loop for as long as pickling the world takes, which grows
            # with the run: take them less often (a rewind replays further, a slice at a time).
            self.checkpoint_every_ms *= 2
        if len(cps) > self.settings.max_checkpoints:
            # Keep the first and every other one; checkpoints get sparser as the run grows.
            self.checkpoints = [cps[0]] + cps[2::2] if len(cps) % 2 else [cps[0]] + cps[1::2]
            self.checkpoint_every_ms *= 2

    def _push_action(self, a: dict) -> None:
        # `act` would schedule at now + 1 µs; a timeline action must land exactly at its recorded
        # `at` (ordering among same-time events depends on it), which is what `schedule` does.
        self.sim.schedule(a)

    def advance(self, target_ms: float, budget: int | None = None,
                deadline: float | None = None) -> bool:
        """Run to `target_ms`, pushing timeline actions as the clock reaches them. With a budget
        (events) or a deadline (`time.perf_counter()`), stop when it is spent and return False;
        calling again carries on exactly where it stopped. Without either, a checkpoint is taken at
        the end when one is due; with them, the caller takes it (`_checkpoint_due`), so that one
        slice never pays for both."""
        sim, tl = self.sim, self.timeline
        n = 0
        clock_at = _CLOCK_EVERY
        while True:
            nxt = sim.next_event_ms()
            if self.ai < len(tl):
                at = tl[self.ai]["at"]
                if at <= target_ms and (nxt is None or at <= nxt) and at >= sim.now_ms:
                    self._push_action(tl[self.ai])
                    self.ai += 1
                    continue
                if at < sim.now_ms:  # cannot happen on a consistent timeline; never loop on it
                    self.ai += 1
                    continue
            if nxt is None or nxt > target_ms:
                break
            if budget is not None and n >= budget:
                return False
            if deadline is not None and n >= clock_at:
                if time.perf_counter() >= deadline:
                    return False
                clock_at = n + _CLOCK_EVERY
            # run_until (not step) so a cancelled timer at the head never makes us overshoot.
            before = sim.events
            sim.run_until(nxt)
            n += sim.events - before
        sim.run_until(target_ms)
        if budget is None and deadline is None and self._checkpoint_due():
            self._checkpoint()
        return True

    def _checkpoint_due(self) -> bool:
        return self.sim.now_ms - self.checkpoints[-1][0] >= self.checkpoint_every_ms

    def _resync_refs(self) -> None:
        self.sim_ref = self.sim.now_ms
        self.wall_ref = time.monotonic()

    def _clamp_speed(self, v: float) -> float:
        return min(self.settings.max_speed, max(self.settings.min_speed, v))

    # --- time controls -------------------------------------------------------------------------
    def seek(self, t_ms: float) -> None:
        """Go to simulated time t (back or forward) on the current branch, as a replay job (which
        supersedes any job in progress). Pauses."""
        try:
            check_replay(self.scenario, t_ms, self.settings, where="control.t")
        except ScenarioError as e:
            raise BadInput(str(e)) from None
        t_ms = round(t_ms, 3)
        self.playing = False
        job = self.job
        if t_ms < self.sim.now_ms:
            seen = self.sim.now_ms
            i = bisect.bisect_right([c[0] for c in self.checkpoints], t_ms) - 1
            cp_t, ai, blob = self.checkpoints[max(0, i)]
            if job is None:
                self.queue_events()  # what happened before the seek belongs to the last picture
            self.sim = Simulation(self.base) if blob is None else Simulation.restore(blob)
            self.ai = ai
            self._attach(messages=False)
            if job is not None:
                # A rewind in the middle of a job: what it found after the checkpoint will be
                # found again (or is no longer wanted); the rest stays to be told.
                job.words = collections.deque((w for w in job.words if w[0] <= cp_t), job.words.maxlen)
                job.target_ms = t_ms
                job.from_ms = self.sim.now_ms
                job.events0 = self.sim.events  # its cost counts from here again
            else:
                # The page already told what happened up to here (it drops what is now the
                # future): the replay from the checkpoint only brings each node's last-told
                # state up to date.
                self.job = Replay("seek", self.sim.now_ms, t_ms, seen, self.settings.words_per_frame,
                                  self.sim.events)
            return
        if job is not None:
            job.target_ms = t_ms  # forward from here: the same job goes further
            return
        self._start_job("seek", t_ms, seen_ms=self.sim.now_ms)

    # --- replay jobs ---------------------------------------------------------------------------
    def _start_job(self, kind: str, target_ms: float, seen_ms: float) -> None:
        if self.job is None:
            self.queue_events()  # what happened before belongs to the previous picture
            self.sim.unsubscribe(self._observer)
            self.sim.subscribe(self._observer, messages=False)  # a replay draws no pills
        self.job = Replay(kind, self.sim.now_ms, target_ms, seen_ms, self.settings.words_per_frame,
                          self.sim.events)

    def _end_job(self) -> None:
        self.job = None
        self.queued_at = 0
        if self.gate is not None:
            # Its CPU so far is remembered: a session's next replay queues behind fresher ones.
            self.gate.release(self.id)

    def _fold_job_records(self) -> None:
        """Turn a slice's records into the words the job will tell (or just into `told`)."""
        job, told, describe = self.job, self.told, self.adapter.describe
        recs = self.pending_recs
        if not recs:
            return
        if recs[-1]["t"] > job.seen_ms:
            words, seen = job.words, job.seen_ms
            for r in recs:
                text = describe(r, told)
                if text and r["t"] > seen:
                    if len(words) == words.maxlen:
                        job.skipped += 1
                    words.append([r["t"], text])
        else:
            for r in recs:
                if r["type"] == "state":
                    describe(r, told)
        recs.clear()

    def run_job_slice(self, budget_s: float) -> bool:
        """Advance the job by at most `budget_s` of CPU; True when it is finished (its frames
        queued), False when there is more to do (a progress frame queued now and then).

        A replay is bounded by its work, not only by simulated time: after each slice its cost
        (events) is extrapolated to the target, and a job estimated, or found, to need more than
        `max_replay_events` stops where it is with a sentence naming the limit."""
        job = self.job
        start = time.perf_counter()
        if self._checkpoint_due():
            self._checkpoint()
        done = self.advance(job.target_ms, deadline=start + budget_s)
        self._fold_job_records()
        if self.gate is not None:
            self.gate.charge(self.id, time.perf_counter() - start)
        if done:
            self._finish_job()
            return True
        cost = self._job_cost_estimate()
        if cost is not None:
            self._stop_job_over_cost(cost)
            return True
        now = time.monotonic()
        if now - job.told_at >= self.settings.frame_interval_ms / 1000:
            job.told_at = now
            self.queue_progress()
        return False

    def _job_cost_estimate(self) -> int | None:
        """None while the job fits `max_replay_events`; else the events it is estimated (from its
        rate so far) or found to need."""
        job, sim = self.job, self.sim
        limit = self.settings.max_replay_events
        done = sim.events - job.events0
        if done > limit:
            return done
        span = sim.now_ms - job.from_ms
        if span <= 0 or done < 1000:
            return None  # too little seen to extrapolate
        estimate = int(done / span * (job.target_ms - job.from_ms))
        return estimate if estimate > limit else None

    def _stop_job_over_cost(self, estimate: int) -> None:
        job = self.job
        limit = self.settings.max_replay_events
        what = "this link" if job.kind == "load" else "this seek"
        self._finish_job()
        self.queue_error(
            f"t: replaying {what} to {fmt_ms(job.target_ms)} would take about {estimate:,} events "
            f"(messages, timers and actions), more than the {limit:,} a replay may take on this "
            f"server (PLAYGROUND_MAX_REPLAY_EVENTS); it stopped at {fmt_ms(self.sim.now_ms)}. Play "
            "on from here, or share an earlier moment")

    def _finish_job(self) -> None:
        """The job is over (done, or stopped by `pause`): tell the stretch, send the picture."""
        job = self.job
        self._end_job()
        sim = self.sim
        sim.unsubscribe(self._observer)
        sim.subscribe(self._observer)
        self.msg_to = {mid: f[1] for mid, f in sim.flight.items()}
        self.horizon = max(self.horizon, sim.now_ms)
        self._resync_refs()
        if job.words:
            words = list(job.words)
            if job.skipped:
                words.insert(0, [words[0][0], f"\u2026 {job.skipped} more events (slow down to read them)"])
            self._queue({"type": "events", "t": sim.now_ms, "ev": words})
        self.violation_count = self._violation_count()
        self.queue_snapshot()

    def queue_progress(self) -> None:
        job = self.job
        frame = {"type": "progress", "kind": job.kind, "from": job.from_ms, "to": job.target_ms,
                 "done": round(job.done_fraction(self.sim.now_ms), 3)}
        if self.queued_at:
            frame["queued"] = self.queued_at
        self._queue(frame)

    def _busy(self, what: str) -> BadInput:
        job = self.job
        pct = int(job.done_fraction(self.sim.now_ms) * 100)
        return BadInput(f"{what}: the session is still replaying to {fmt_ms(job.target_ms)} "
                        f"({pct}% done); wait for it, or pause to stop the replay where it is")

    def step(self, count: int) -> None:
        """Process exactly `count` events (timeline actions count as events)."""
        self.playing = False
        for _ in range(count):
            nxt = self.sim.next_event_ms()
            if self.ai < len(self.timeline):
                at = self.timeline[self.ai]["at"]
                if nxt is None or at <= nxt:
                    self.sim.run_until(max(self.sim.now_ms, at - 0.001))
                    self._push_action(self.timeline[self.ai])
                    self.ai += 1
            if not self.sim.step():
                break
        self.horizon = max(self.horizon, self.sim.now_ms)
        self._resync_refs()

    def act(self, data: dict) -> dict:
        """A click: fork the timeline here if it has a future, record the action, apply it now."""
        if len(self.sim.actions) >= self.settings.max_actions:
            raise BadInput(f"action: this session has recorded {self.settings.max_actions} actions, "
                           "the limit; reset to start a new run")
        try:
            rec = self.sim.act(data)
        except ScenarioError as e:
            raise BadInput(str(e)) from None
        if self.ai < len(self.timeline):  # fork: the old future is gone
            del self.timeline[self.ai:]
            self.checkpoints = [c for c in self.checkpoints if c[0] <= self.sim.now_ms]
        self.timeline.append(rec)
        self.new_acts.append(rec)
        self.ai = len(self.timeline)
        self.advance(rec["at"], budget=None)  # apply it now, even when paused
        self.horizon = self.sim.now_ms
        self._resync_refs()
        return rec

    def share_payload(self) -> str:
        sc = self.base.with_(actions=list(self.sim.actions))
        return share.encode(sc, self.sim.now_ms, self.lesson)

    # --- input -----------------------------------------------------------------------------------
    def handle(self, text: str | bytes, bucket: "TokenBucket | None" = None) -> None:
        """One inbound frame. Bad input becomes an `error` frame; the session keeps running."""
        self.last_input = time.monotonic()
        msg = None
        try:
            if bucket is not None and not bucket.take(1):
                self._rate_limited(bucket)
                return
            msg = parse_inbound(text, self.settings.max_frame_bytes)
            if (bucket is not None and isinstance(msg, HEAVY)
                    and not bucket.take(self.settings.ws_heavy_cost - 1)):
                self._rate_limited(bucket)
                return
            if bucket is not None:
                bucket.told = False  # within the limit again: the next excess is told again
            self._apply(msg)
        except (BadInput, ScenarioError) as e:
            self.queue_error(str(e))
        except Exception as e:  # a bug must neither drop the connection nor pause the session
            what = "frame" if msg is None else (
                "action" if isinstance(msg, ActionIn) else f"control.{getattr(msg, 'do', '?')}")
            log.exception("session %s: internal error handling %s", self.id, what)
            self.queue_error(f"internal error handling {what}: {e!r}")
        self.kick()

    def _rate_limited(self, bucket: "TokenBucket") -> None:
        """Over the per-connection rate: the frame is dropped, and the page told once."""
        if not bucket.told:
            bucket.told = True
            s = self.settings
            self.queue_error(f"rate: more than {s.ws_rate_per_s:g} frames per second (bursts of "
                             f"{s.ws_burst}; loading and resetting count {s.ws_heavy_cost}); frames "
                             "are dropped until the rate falls")
            self.kick()

    def _apply(self, msg: Any) -> None:
        s = self.settings
        if self.job is not None and self._apply_during_job(msg):
            return
        if isinstance(msg, ActionIn):
            self.act(msg.action)
            self.queue_events()  # the click's effect goes out now, not at the next tick
            if not self.playing:
                self.queue_snapshot()
            return
        if isinstance(msg, Play):
            if self.sim.now_ms >= self.scenario.duration_ms:
                raise BadInput(f"control.play: the scenario ends at {self.scenario.duration_ms:g} ms; "
                               "rewind or reset first")
            self.playing = True
            self._resync_refs()
            self.queue_snapshot()
        elif isinstance(msg, Pause):
            self.playing = False
            self.queue_events()
            self.queue_snapshot()
        elif isinstance(msg, Step):
            self.queue_events()
            self.step(msg.count)
            self.queue_events()
            self.queue_snapshot()
        elif isinstance(msg, Speed):
            if not (s.min_speed <= msg.value <= s.max_speed):
                raise BadInput(f"control.value: speed must be between {s.min_speed:g} and "
                               f"{s.max_speed:g} (1 = real time), not {msg.value:g}")
            self.speed = msg.value
            self._resync_refs()
            self.queue_snapshot()
        elif isinstance(msg, Seek):
            self.seek(msg.t)  # a job: its snapshot follows when it is done
        elif isinstance(msg, Reset):
            self.load(self.scenario, self.lesson, playing=self.playing)
        elif isinstance(msg, NewSeed):
            seed = msg.seed if msg.seed is not None else random.SystemRandom().randrange(1, 1_000_000)
            self.load(self.scenario.with_(seed=seed, actions=[]), self.lesson, playing=self.playing)
        elif isinstance(msg, Lesson):
            lf = self.lessons.get(msg.name)
            if lf is None:
                raise BadInput(f"control.name: no lesson {msg.name!r} (known: "
                               f"{', '.join(sorted(self.lessons)) or 'none'})")
            self.load(lf.scenario, lf.name, playing=True)
        elif isinstance(msg, Configure):
            self._configure(msg)
        elif isinstance(msg, Load):
            sc, t, lesson = decode_share(msg.share, s)
            self.load(sc, lesson, until_ms=t, playing=False)
        elif isinstance(msg, Share):
            self._queue({"type": "share", "payload": self.share_payload()})
        elif isinstance(msg, Resync):
            if not self._snapshot_pending:  # repeated requests collapse into the pending one
                self.queue_snapshot()
        elif isinstance(msg, Check):
            self._check_linearizability(force=True)
            self.queue_snapshot()

    def _apply_during_job(self, msg: Any) -> bool:
        """Input that arrives while a replay runs. True when handled here.

        A seek supersedes the replay's target; pause stops the replay where it has got to; a
        speed change just applies; a snapshot request is answered by the snapshot that ends the
        replay; reset, new seed, lesson, configure and load start over (dropping the replay).
        Clicks, play, step, share and check are refused with an error saying why."""
        if isinstance(msg, Seek):
            self.seek(msg.t)
            return True
        if isinstance(msg, Pause):
            self._finish_job()
            return True
        if isinstance(msg, Speed):
            s = self.settings
            if not (s.min_speed <= msg.value <= s.max_speed):
                return False  # the usual error
            self.speed = msg.value
            return True
        if isinstance(msg, Resync):
            return True
        if isinstance(msg, (Reset, NewSeed, Lesson, Configure, Load)):
            return False  # `load` drops the job (only once the new scenario passed its checks)
        what = "action" if isinstance(msg, ActionIn) else f"control.{msg.do}"
        raise self._busy(what)

    def _configure(self, msg: Configure) -> None:
        sc = self.scenario
        changes: dict[str, Any] = {"actions": []}
        if msg.nodes is not None:
            if msg.nodes > self.settings.max_nodes:
                raise BadInput(f"control.nodes: at most {self.settings.max_nodes} nodes per session")
            changes["nodes"] = msg.nodes
        cfg = sc.config.model_dump(mode="json")
        if msg.mutations is not None:
            known = self.protocol.mutations
            bad = [m for m in msg.mutations if m not in known]
            if bad:
                raise BadInput(f"control.mutations: unknown mutation {bad[0]!r} "
                               f"(known: {', '.join(sorted(known))})")
            cfg["mutations"] = sorted(set(msg.mutations))
        if msg.pre_vote is not None:
            cfg["pre_vote"] = msg.pre_vote
        if msg.check_quorum is not None:
            cfg["check_quorum"] = msg.check_quorum
        changes["config"] = cfg
        if msg.workload is not None:
            changes["workload"] = (live_workload(self.settings) if msg.workload else None)
        self.load(sc.with_(**changes), self.lesson, playing=self.playing)

    # --- the runner ----------------------------------------------------------------------------
    def kick(self) -> None:
        if self._wake is not None:
            _wake_up(self._wake)

    async def run(self, ws=None) -> None:
        """Advance simulated time against the wall clock and send frames, until detached.

        Ticks fall on a fixed grid, `interval` apart, offset by this session's `phase_s`: the
        manager spreads the phases evenly over the interval, so 500 sessions make a steady trickle
        of work instead of bursts (a burst makes every session in it late). A late tick is caught
        up (the next one follows at once) so a session still gets its 20 frames a second; only
        when more than `frame_catch_up` ticks behind does the runner skip ahead, on the same grid.

        While a replay job runs (and it is this session's turn), the runner does slices of it
        back to back instead of ticks, yielding to the loop after each one.
        """
        try:
            await self._run(self.ws if ws is None else ws)
        finally:
            if self.gate is not None:
                # A detached session queues again when it comes back, with the CPU it has had.
                self.gate.release(self.id)
            self.queued_at = 0

    async def _run(self, ws) -> None:
        loop = asyncio.get_running_loop()
        slice_s = self.settings.replay_slice_ms / 1000
        interval = self.settings.frame_interval_ms / 1000
        catch_up = self.settings.frame_catch_up * interval
        epoch = time.time() - loop.time()
        start = loop.time()
        due = start + (self.phase_s - start) % interval
        gen = self.generation
        while not self.closed and ws is not None and self.ws is ws and self.generation == gen:
            if self.job is not None and self._job_turn():
                try:
                    self.run_job_slice(slice_s)
                except Exception as e:  # a bug must not wedge the session in a replay
                    log.exception("session %s: replay failed", self.id)
                    self.queue_error(f"internal error while replaying: {e!r}")
                    self._end_job()
                if self.gate is not None:
                    self.gate.release(self.id)  # never hold a slot while waiting on the socket
                if not await self.flush(ws):
                    break
                await asyncio.sleep(0)  # every other session's ticks and input come first
                continue
            now = loop.time()
            if now < due - _EARLY_S and not self.outbox:
                fut = loop.create_future()
                self._wake = fut
                handle = loop.call_at(due, _wake_up, fut)
                await fut
                handle.cancel()
                self._wake = None
                now = loop.time()
            ticked = now >= due - _EARLY_S
            tick_due = due
            if ticked:
                try:
                    self.tick((due + epoch) * 1000)
                except Exception as e:  # a bug must not kill the session silently
                    log.exception("session %s: tick failed", self.id)
                    self.queue_error(f"internal error while advancing the simulation: {e!r}")
                    self.playing = False
                due += interval
                if now - due > catch_up:  # far behind: skip the missed ticks, keep the phase
                    due += math.ceil((now - due) / interval) * interval
            if not await self.flush(ws):
                break
            if ticked and self.stats is not None:
                self.stats.append(loop.time() - tick_due)  # server-side lateness of this tick's frame

    def _job_turn(self) -> bool:
        """May this session's replay run now? (Its place in the queue is told at each tick.)"""
        if self.gate is None:
            return True
        self.queued_at = self.gate.enter(self.id)
        return self.queued_at == 0

    def tick(self, due_wall_ms: float) -> None:
        if self.job is not None:  # waiting for a turn to replay: say where in the queue
            self.queue_progress()
            return
        if self.playing:
            # A session stops where it could still be shared and replayed: at the scenario's end
            # or after max_replay_ms, whichever comes first (state, and so checkpoints, stay bounded).
            end, why = self._shareable_end()
            target = self.sim_ref + (time.monotonic() - self.wall_ref) * 1000 * self.speed
            target = min(round(target, 3), end)
            st = self.settings
            deadline = time.perf_counter() + st.tick_budget_ms / 1000
            if target > self.sim.now_ms:
                if self._checkpoint_due():
                    self._checkpoint()  # counts against this tick's budget
                room = max(1, int(0.9 * st.max_replay_events) - self.sim.events)
                ok = self.advance(target, budget=min(st.max_events_per_tick, room), deadline=deadline)
                self.behind = not ok
                if not ok:
                    self._resync_refs()  # do not accumulate a debt: fall behind gracefully
                self.horizon = max(self.horizon, self.sim.now_ms)
            # A share link replays the run from t = 0: past 90% of the events a replay may take,
            # live play stops too (with the margin the replay's estimate needs).
            over_events = self.sim.events >= 0.9 * st.max_replay_events
            if self.sim.now_ms >= end or over_events:
                self.playing = False
                self.queue_events()
                if over_events:
                    self.queue_error(f"time: this session has processed {self.sim.events:,} events "
                                     f"by {fmt_ms(self.sim.now_ms)}, about the most a share link "
                                     f"may replay (PLAYGROUND_MAX_REPLAY_EVENTS = "
                                     f"{st.max_replay_events:,}); rewind, reset or pick a lesson")
                elif end < self.scenario.duration_ms:
                    self.queue_error(f"time: this session reached {fmt_ms(end)}, the longest run "
                                     f"that can be shared and replayed ({why}); rewind, reset or "
                                     "pick a lesson")
                self.queue_snapshot()
                return
            if time.perf_counter() < deadline:  # the search waits for a tick with budget left
                self._check_linearizability()
            self.queue_events(due_wall_ms)
        elif self.pending_recs:
            self.queue_events()

    def _shareable_end(self) -> tuple[float, str]:
        """Where live play stops: the scenario's end, or the longest run a share link may replay
        (`max_replay_ms`, and `max_replay_ops` client operations at the workload's rate, exactly
        as `check_replay` counts them), whichever comes first; with the limit's name."""
        st = self.settings
        end, why = float(self.scenario.duration_ms), "the scenario's end"
        if st.max_replay_ms < end:
            end, why = st.max_replay_ms, f"at most {fmt_ms(st.max_replay_ms)} of simulated time"
        wl = self.scenario.workload
        if wl is not None and wl.clients > 0 and wl.rate_per_s > 0:
            ops_end = math.floor(st.max_replay_ops / wl.rate_per_s * 1000 * 1000) / 1000
            if ops_end < end:
                end, why = ops_end, (f"at most {st.max_replay_ops} client operations at "
                                     f"{wl.rate_per_s:g} per second")
        return end, why

    def _check_linearizability(self, force: bool = False) -> None:
        lin = self.lin
        if lin is None:
            return
        now = time.monotonic()
        last = self._lin_checked_at
        if not force and last is not None and now - last < self.settings.lin_check_every_s:
            return
        self._lin_checked_at = now
        lin.check(self.settings.lin_check_budget)

    async def flush(self, ws=None) -> bool:
        """Send everything queued to `ws` (the runner's own socket), in order, each frame with the
        next `seq`. False when the socket failed or this connection no longer holds the session."""
        ws = self.ws if ws is None else ws
        while self.outbox and self.ws is ws and ws is not None:
            for f, body in self.outbox.take():
                self.seq += 1
                if f["type"] == "snapshot":
                    self._snapshot_pending = False
                self.sending_since = time.monotonic()
                try:
                    await ws.send_text(wire(body, self.seq))
                except Exception:
                    return False
                finally:
                    self.sending_since = None
        return ws is not None and self.ws is ws

    def stalled(self, now: float, limit_s: float) -> bool:
        """Has one send to the page been stuck for more than `limit_s` (a page that never reads)?"""
        return self.sending_since is not None and now - self.sending_since > limit_s

    def fall_behind(self, why: str) -> None:
        """The page cannot keep up (too many bytes waiting, or a send stuck): close its connection
        with 4002 and a reason. The session stays for the grace period, so a reload (or the page's
        own reconnect) picks it up again with a fresh snapshot; nothing else notices."""
        ws = self.ws
        if ws is None:
            return
        self.ws = None
        self.detached_at = time.monotonic()
        self.outbox.clear()
        self._snapshot_pending = False
        task = self.task
        if task is not None and not task.done() and task is not _current_task():
            task.cancel()
        log.info("session %s: closing a connection that fell too far behind (%s)", self.id, why)
        try:
            asyncio.ensure_future(close_or_abort(ws, 4002, f"too far behind: {why}"))
        except RuntimeError:  # no event loop (a session driven directly, in tests)
            pass

    def owns(self, ws) -> bool:
        return ws is not None and self.ws is ws

    def check_secret(self, secret: Any) -> bool:
        return isinstance(secret, str) and hmac.compare_digest(secret.encode(), self.secret.encode())

    # --- frames ----------------------------------------------------------------------------------
    def _queue(self, frame: dict) -> None:
        """Queue a frame, stamped with the simulated time it describes (now, not at flush). A page
        with more than `max_outbox_bytes` waiting, even after snapshots collapsed, is too far
        behind: its connection is closed (`fall_behind`)."""
        frame.setdefault("t", self.sim.now_ms)
        self.outbox.append(frame)
        cap = self.settings.max_outbox_bytes
        if self.outbox.bytes > cap and self.ws is not None:
            # Snapshots already collapse as they are queued: this much waiting even so means the
            # page is hopelessly behind (dropping frames here could lose its latest picture).
            self.fall_behind(f"{self.outbox.bytes} bytes of frames waiting, the limit is {cap}")

    def queue_error(self, message: str, fatal: bool = False) -> None:
        if len(message) > 500:  # never echo a long input back (each part is quoted short already)
            message = message[:497] + "\u2026"
        frame: dict[str, Any] = {"type": "error", "message": message}
        if fatal:
            frame["fatal"] = True
        self._queue(frame)

    def queue_hello(self) -> None:
        sc = self.scenario
        sim = self.sim
        lf = self.lessons.get(self.lesson) if self.lesson else None
        self._queue({
            "type": "hello",
            "session": self.id,
            "secret": self.secret,
            "protocol": sc.protocol,
            "scenario": self.base.to_dict(),
            # The branch's actions (a page can rebuild a share link from these, `acts` in
            # `events` and the frames' `t`, even after the server has lost the session).
            "actions": list(self.timeline),
            "layout": {"nodes": sim.servers,
                       "clients": list(sim.clients)},
            "lesson": ({"name": lf.name, "title": lf.title, "notes": lf.notes, "suggest": lf.suggest}
                       if lf else ({"name": self.lesson, "title": sc.title or self.lesson,
                                    "notes": "", "suggest": ""} if self.lesson else None)),
            "mutations": dict(self.protocol.mutations),
            "active_mutations": list(sc.config.mutations),
            "invariants": [[n, e] for n, e in self.protocol.invariants],
            "timeout_ms": [sc.config.election_timeout_ms_min, sc.config.election_timeout_ms_max],
            "end": sc.duration_ms,
            "limits": {"min_speed": self.settings.min_speed, "max_speed": self.settings.max_speed,
                       "max_nodes": self.settings.max_nodes,
                       "frame_interval_ms": self.settings.frame_interval_ms,
                       "log_window": self.settings.log_window},
        })

    def _invariants(self) -> list[dict]:
        out = []
        for c in self.sim.checkers:
            if c.name == "mirror":
                continue
            ok: bool | None = not c.violations
            if c is self.lin and ok and c.result is None:
                ok = None  # the search gave up: unknown
            v = c.violations[0] if c.violations else None
            out.append({"name": c.name, "ok": ok, "explains": c.explains,
                        "violation": ({"t": v["t"], "nodes": v["nodes"], "detail": v["detail"]}
                                      if v else None), "count": len(c.violations)})
        return out

    def _net(self) -> dict:
        net = self.sim.network
        v = net.view()
        servers = self.sim.servers
        links = {}
        for i, a in enumerate(servers):
            for b in servers[i + 1:]:
                links[f"{a}-{b}"] = net.cut_state(a, b)
        v["cut"] = links
        return v

    def _pill(self, mid: int, f: tuple) -> list:
        src, dst, msg, t0, t1 = f
        label, cls = self.adapter.msg_label(msg)
        return [mid, src, dst, t0 / 1000, t1 / 1000, label, cls]

    def queue_snapshot(self) -> None:
        sim = self.sim
        self.queue_events()  # whatever happened before belongs to the previous picture
        # This snapshot is the whole picture: the state frames still waiting are redundant.
        self.outbox.collapse(self.settings.words_per_frame, backed_up_only=True)
        lw = self.settings.log_window
        nodes = {nid: self.adapter.node(v, True, lw) for nid, v in sim.views().items()}
        self.shown = set(sim.flight)
        self._snapshot_pending = True
        self._queue({
            "type": "snapshot", "t": sim.now_ms, "digest": sim.digest(), "playing": self.playing,
            "speed": self.speed, "horizon": self.horizon, "end": self.scenario.duration_ms,
            "nodes": nodes,
            "flight": [self._pill(mid, f) for mid, f in sorted(sim.flight.items())],
            "net": self._net(), "inv": self._invariants(), "actions": len(sim.actions),
            "events": sim.events, "behind": self.behind,
        })

    def queue_events(self, due_wall_ms: float | None = None) -> None:
        """Turn the records since the last frame into an `events` frame."""
        recs = self.pending_recs
        if not recs and due_wall_ms is None and not self.new_acts:
            return
        sim = self.sim
        flight = sim.flight
        adapter = self.adapter
        dirty: set[str] = set()
        sent: dict[int, dict] = {}
        gone: list[list] = []
        drops: list[list] = []
        logd: list[list] = []
        words: list[list] = []
        net_changed = False
        msg_to = self.msg_to
        for r in recs:
            kind = r["type"]
            if kind == "send":
                mid = r["id"]
                sent[mid] = r
                msg_to[mid] = r["to"]
            elif kind == "deliver":
                mid = r["id"]
                to = msg_to.pop(mid, None)
                if to is not None:
                    dirty.add(to)
                if mid in self.shown:
                    self.shown.discard(mid)
                    gone.append([mid, None])
            elif kind == "drop":
                mid = r["id"]
                msg_to.pop(mid, None)
                if mid in self.shown:
                    self.shown.discard(mid)
                    gone.append([mid, r["why"]])
                elif mid in sent and mid not in flight:
                    s = sent[mid]
                    drops.append([s["from"], s["to"], adapter.msg_label(s["msg"])[0], r["why"]])
            else:
                if kind == "state":
                    dirty.add(r["node"])
                    lg = r.get("log")
                    if lg is not None:
                        logd.append([r["node"], lg["keep"], [adapter.entry(e) for e in lg["append"]]])
                elif kind == "fault":
                    if r.get("node") in self.told:
                        dirty.add(r["node"])
                    if r["do"] in ("partition", "cut", "heal", "set_link"):
                        net_changed = True
                text = adapter.describe(r, self.told)
                if text:
                    words.append([r["t"], text])
        self.pending_recs = []
        frame: dict[str, Any] = {"type": "events", "t": sim.now_ms}
        if due_wall_ms is not None:
            frame["w"] = round(due_wall_ms, 1)
        add = []
        for mid in sent:
            f = flight.get(mid)
            if f is not None:
                self.shown.add(mid)
                add.append(self._pill(mid, f))
        if add:
            frame["add"] = add
        if gone:
            frame["del"] = gone
        if drops:
            frame["drops"] = drops[-50:]
        if dirty:
            views = sim.views()
            frame["nodes"] = {n: adapter.node(views[n], False, 0) for n in sorted(dirty) if n in views}
        if logd:
            frame["logd"] = logd
        if words:
            cap = self.settings.words_per_frame
            if len(words) > cap:
                skipped = len(words) - cap
                words = words[-cap:]
                words.insert(0, [words[0][0], f"\u2026 {skipped} more events (slow down to read them)"])
            frame["ev"] = words
        if net_changed:
            frame["net"] = self._net()
        if self.new_acts:
            frame["acts"] = self.new_acts
            self.new_acts = []
        # Checkers only find violations in records they observe: count them only after records.
        vc = self._violation_count() if recs else self.violation_count
        lin_state = None if self.lin is None else self.lin.result
        if vc != self.violation_count or lin_state != self._lin_told:
            self.violation_count = vc
            self._lin_told = lin_state
            frame["inv"] = self._invariants()
        if self.behind:
            frame["behind"] = True
        self._queue(frame)


def live_workload(settings: Settings) -> dict | None:
    if settings.workload_clients <= 0 or settings.workload_rate_per_s <= 0:
        return None
    return {"clients": settings.workload_clients, "rate_per_s": settings.workload_rate_per_s, "keys": 2}


def default_scenario(settings: Settings, seed: int | None = None) -> Scenario:
    from engine.scenario import parse_scenario

    data: dict[str, Any] = {"protocol": "raft", "nodes": settings.default_nodes,
                            "seed": seed if seed is not None else random.SystemRandom().randrange(1, 1_000_000),
                            "duration_ms": settings.live_duration_ms, "title": "A live Raft cluster"}
    wl = live_workload(settings)
    if wl:
        data["workload"] = wl
    return parse_scenario(data)


def _current_task():
    try:
        return asyncio.current_task()
    except RuntimeError:
        return None


__all__ = ["Session", "TokenBucket", "ReplayGate", "default_scenario", "live_workload"]
