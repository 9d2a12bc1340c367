"""Replay jobs and their admission: a replay (opening a share link, `load`, a seek either way) runs
a slice at a time, and the sessions' replays take turns.

No request may hold the event loop (which every session shares) for long. A replay is a `Replay`
job that the runner advances in slices of at most `replay_slice_ms` of CPU, yielding between slices
and telling the page how far it has got (`progress` frames); at most `max_concurrent_replays`
sessions replay at once (the rest wait their turn, see `ReplayGate`). The state a job ends in is
exactly the state a synchronous replay reaches: slicing only decides where the loop stops between
two events, never what happens. A replay is bounded by its work (`max_replay_events`), estimated
while it runs.
"""

from __future__ import annotations

import collections
import heapq
import time

from engine.scenario import ScenarioError

from ..limits import check_replay
from ..wire import BadInput
from .timefmt import fmt_ms


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


class ReplayMixin:
    """The session's replay jobs (`self.job`): seek, start, slices, the cost bound, the end."""

    # --- time controls -------------------------------------------------------------------------
    def seek(self, t_ms: float) -> None:
        """Go to simulated time t (back or forward) on the current branch, as a replay job (which
        supersedes any job in progress). Pauses. In compare mode every world goes there, each
        from its own checkpoints, as one job."""
        try:
            check_replay(self.scenario, t_ms, self.settings, where="control.t", worlds=len(self.panes))
        except ScenarioError as e:
            raise BadInput(str(e)) from None
        t_ms = round(t_ms, 3)
        self.playing = False
        if self.job is None:
            self.queue_events()  # what happened before the seek belongs to the last picture
        for _ in self._each():
            self._seek_world(t_ms)

    def _seek_world(self, t_ms: float) -> None:
        """The focused world's part of a seek."""
        job = self.job
        if t_ms < self.sim.now_ms:
            seen = self.sim.now_ms
            cp_t = self.world.rewind(t_ms)
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
        elif job is not None:
            job.target_ms = t_ms  # forward from here: the same job goes further
        else:
            self._start_world_job("seek", t_ms, seen_ms=self.sim.now_ms)

    # --- replay jobs ---------------------------------------------------------------------------
    def _start_job(self, kind: str, target_ms: float, seen_ms: float) -> None:
        if self.job is None:
            self.queue_events()  # what happened before belongs to the previous picture
        for _ in self._each():
            self._start_world_job(kind, target_ms, seen_ms)

    def _start_world_job(self, kind: str, target_ms: float, seen_ms: float) -> None:
        if self.job is None:
            self.sim.unsubscribe(self._observer)
            self.sim.subscribe(self._observer, messages=False)  # a replay draws no pills
        self.job = Replay(kind, self.sim.now_ms, target_ms, seen_ms, self.settings.words_per_frame,
                          self.sim.events)

    def _end_job(self) -> None:
        for p in self.panes:
            p.job = None
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
        queued), False when there is more to do (a progress frame queued now and then). In
        compare mode the worlds share the slice (what one leaves goes to the next).

        A replay is bounded by its work, not only by simulated time: after each slice its cost
        (events, summed over the worlds) is extrapolated to the target, and a job estimated, or
        found, to need more than `max_replay_events` stops where it is with a sentence naming the
        limit."""
        start = time.perf_counter()
        if len(self.panes) == 1:
            if self.world.checkpoint_due():
                self.world.checkpoint()
            done = self.world.advance(self.job.target_ms, deadline=start + budget_s)
            self._fold_job_records()
        else:
            # Compare mode: the worlds in unison (they stop at one moment, whatever happens).
            done = self._lockstep(self.job.target_ms, None, start + budget_s)
            for _ in self._each():
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
        job = self.job
        if now - job.told_at >= self.settings.frame_interval_ms / 1000:
            job.told_at = now
            self.queue_progress()
        return False

    def _job_cost_estimate(self) -> int | None:
        """None while the job fits `max_replay_events`; else the events it is estimated (from its
        rate so far) or found to need, over every world."""
        limit = self.settings.max_replay_events
        done_all = estimate_all = 0
        for p in self.panes:
            job, sim = p.job, p.world.sim
            done = sim.events - job.events0
            done_all += done
            span = sim.now_ms - job.from_ms
            if span <= 0 or done < 1000:
                estimate_all += done  # too little seen to extrapolate
            else:
                estimate_all += int(done / span * (job.target_ms - job.from_ms))
        if done_all > limit:
            return done_all
        return estimate_all if estimate_all > limit else None

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
        """The job is over (done, or stopped by `pause` or its cost): tell the stretch, send the
        picture. (Compare worlds replay in unison, so they stand at one moment.)"""
        jobs = []
        for _ in self._each():  # (the worlds ran in unison: they stand at one moment)
            jobs.append(self.job)
        self._end_job()
        parts = []
        for i, _ in enumerate(self._each()):
            job, sim = jobs[i], self.sim
            sim.unsubscribe(self._observer)
            sim.subscribe(self._observer)
            self.msg_to = {mid: f[1] for mid, f in sim.flight.items()}
            self.world.horizon = max(self.world.horizon, sim.now_ms)
            self.violation_count = self._violation_count()
            words = list(job.words)
            if words and job.skipped:
                words.insert(0, [words[0][0], f"\u2026 {job.skipped} more events (slow down to read them)"])
            parts.append({"ev": words} if words else {})
        self._resync_refs()
        if any(parts):
            frame = {"type": "events", "t": self.sim.now_ms, **parts[0]}
            if len(parts) > 1:
                frame["worlds"] = parts[1:]
            self._queue(frame)
        self.queue_snapshot()

    def queue_progress(self) -> None:
        job = self.job
        done = min(p.job.done_fraction(p.world.sim.now_ms) for p in self.panes)
        frame = {"type": "progress", "kind": job.kind, "from": job.from_ms, "to": job.target_ms,
                 "done": round(done, 3)}
        if self.queued_at:
            frame["queued"] = self.queued_at
        self._queue(frame)

    def _busy(self, what: str) -> BadInput:
        job = self.job
        pct = int(job.done_fraction(self.sim.now_ms) * 100)
        return BadInput(f"{what}: the session is still replaying to {fmt_ms(job.target_ms)} "
                        f"({pct}% done); wait for it, or pause to stop the replay where it is")
