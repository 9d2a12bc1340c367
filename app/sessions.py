"""All live sessions: creation under a cap, reattachment after a reload, idle reaping."""

from __future__ import annotations

import asyncio
import collections
import gc
import logging
import secrets
import time
from collections.abc import Callable

import orjson

from engine.scenario import Scenario

from .lessons import LessonFile
from .session import ReplayGate, Session, TokenBucket
from .settings import Settings
from .transport import close_or_abort

log = logging.getLogger("playground.sessions")


class Full(Exception):
    """The session cap was hit; the message is shown to the user."""


class SessionManager:
    def __init__(self, settings: Settings, lessons: dict[str, LessonFile]):
        self.settings = settings
        self.lessons = lessons
        self.sessions: dict[str, Session] = {}
        self._reaper: asyncio.Task | None = None
        self._created = 0
        self.lateness_s: list[float] | None = [] if settings.bench_stats else None
        self.gc_pauses_s: list[float] = []  # benchmarks only: garbage-collector pauses
        # Benchmarks only: per click, (handled -> its frame's relay begins, the relay's wait (the
        # recipe's write), the send), in seconds; and the event loop's lag (a 10 ms timer's delay).
        self.click_parts_s: collections.deque = collections.deque(maxlen=100_000)
        self.loop_lag_s: collections.deque = collections.deque(maxlen=100_000)
        self._lag_task: asyncio.Task | None = None
        self._gc_task: asyncio.Task | None = None
        self._gc_started = 0.0
        # For the keeper's full passes (`keep_gc`): WebSocket connections open now, and the
        # connections ended and sessions closed since the last full pass.
        self.connections = 0
        self.churn = 0
        self.gc_full_passes = 0
        # Told of each session the reaper closes (app/rooms.py: its recipe leaves the broker).
        self.on_reaped: Callable[[Session], None] | None = None
        # Replays (share links, seeks, imports, exports) take turns: a busy link cannot hold
        # more than this many slices of the loop at once.
        self._new_by_client: dict[str, TokenBucket] = {}  # new-session rate, per address
        self.replay_gate = ReplayGate(settings.max_concurrent_replays, settings.replay_quantum_ms / 1000)

    def create(self, scenario: Scenario, lesson: str | None, speed: float | None,
               until_ms: float = 0.0, playing: bool | None = None,
               client: str | None = None,
               variants: list[tuple[str, dict]] | None = None, sid: str | None = None) -> Session:
        """A new session, built once (a share link's replay to `until_ms` is its first job).

        Two caps, each refused with a sentence naming it: `max_sessions` in all, and
        `max_sessions_per_client` for one client address. A closed tab's session (detached, kept
        for a reload) never blocks a newcomer: when a cap is reached, the oldest detached session
        under it is dropped first, and only attached ones count as full. `sid`: the id of a
        session rebuilt from its recipe (app/rooms.py); a new one otherwise."""
        st = self.settings
        if client is not None:
            bucket = self._new_by_client.get(client)
            if bucket is None:
                bucket = self._new_by_client[client] = TokenBucket(
                    st.new_sessions_per_client_per_s, st.new_sessions_per_client_burst)
            if not bucket.take():
                raise Full(f"this address opened more than {st.new_sessions_per_client_burst} new "
                           f"sessions at once (PLAYGROUND_NEW_SESSIONS_PER_CLIENT_BURST, then "
                           f"{st.new_sessions_per_client_per_s:g} a second); wait a moment and "
                           "reload")
            mine = [x for x in self.sessions.values() if x.client == client]
            if len(mine) >= st.max_sessions_per_client and not self._evict_detached(mine):
                raise Full(f"this address already has {len(mine)} sessions open, the limit per "
                           f"address (PLAYGROUND_MAX_SESSIONS_PER_CLIENT = "
                           f"{st.max_sessions_per_client}); close a tab and try again")
        if len(self.sessions) >= st.max_sessions and not self._evict_detached(self.sessions.values()):
            raise Full(f"the playground is full ({st.max_sessions} live sessions, the limit on this "
                       "server, PLAYGROUND_MAX_SESSIONS); try again in a minute")
        sid = sid or secrets.token_urlsafe(9)
        s = Session(sid, self.settings, self.lessons, scenario, lesson, speed, until_ms, playing,
                    variants)
        s.client = client
        s.stats = self.lateness_s
        if self.lateness_s is not None:
            s.click_stats = self.click_parts_s
        s.gate = self.replay_gate
        # Spread the sessions' ticks evenly over the frame interval (golden-ratio steps: any number
        # of sessions, created in any order, stays evenly spread).
        self._created += 1
        s.phase_s = (self._created * 0.6180339887498949) % 1.0 * self.settings.frame_interval_ms / 1000
        self.sessions[sid] = s
        return s

    def _evict_detached(self, among) -> bool:
        """Drop the session detached longest among `among`; False when none is detached."""
        old = min((x for x in among if x.ws is None and x.detached_at is not None),
                  key=lambda x: x.detached_at, default=None)
        if old is None:
            return False
        self.drop(old)
        if self.on_reaped is not None:
            self.on_reaped(old)  # gone for good, as a reaped one
        return True

    def get(self, sid: str | None) -> Session | None:
        return self.sessions.get(sid) if sid else None

    async def attach(self, s: Session, ws, greet: bool = False) -> bool:
        """Give `s` to `ws`. A session has exactly one runner and one connection: the previous
        connection (another tab, or the same tab before a reload) is told and closed with 4001,
        and its runner is cancelled and awaited before the new one starts. Attaches to one
        session run one at a time (a lock), so any number of simultaneous takeovers leave one
        runner, and every loser gets its 4001. With `greet`, the new connection is sent `hello`
        and a `snapshot` first (a reattach). False when the session was closed meanwhile."""
        async with s.attach_lock:
            if s.closed:
                return False
            old = s.ws
            if old is not None and old is not ws:
                s.ws = None
                # The old runner is cancelled below: this last word goes straight to the old socket.
                asyncio.ensure_future(_close_quietly(
                    old, 4001, "session opened elsewhere", last=
                    {"type": "error", "seq": s.seq + 1, "t": s.sim.now_ms, "fatal": True,
                     "message": "this session was opened in another tab or window; this page "
                                "stopped following it"}))
            s.generation += 1  # a runner still alive for an older generation stops at once
            old_task = s.task
            if old_task is not None and not old_task.done():
                old_task.cancel()
                try:
                    await asyncio.wait({old_task}, timeout=1.0)
                except Exception:  # pragma: no cover - nothing the old runner does may stop the new one
                    log.exception("session %s: old runner did not stop cleanly", s.id)
            if s.closed:
                return False
            s.ws = ws
            s.detached_at = None
            s.last_input = time.monotonic()
            if greet:
                # What the previous page had not read yet is for nobody now: a fresh picture.
                s.outbox.clear()
                s._snapshot_pending = False
                s.queue_hello()
                s.queue_snapshot()
            s.task = asyncio.ensure_future(s.run(ws))
            return True

    def detach(self, s: Session, ws) -> None:
        if s.ws is ws:
            s.ws = None
            s.detached_at = time.monotonic()
            s.kick()

    def connection_opened(self) -> None:
        self.connections += 1

    def connection_ended(self) -> None:
        self.connections -= 1
        self.churn += 1

    def drop(self, s: Session) -> None:
        if not s.closed:
            self.churn += 1
        s.closed = True
        s.kick()
        self.replay_gate.leave(s.id)
        self.sessions.pop(s.id, None)

    def reap(self, now: float | None = None) -> list[str]:
        """Close sessions idle too long or detached longer than the grace period."""
        now = time.monotonic() if now is None else now
        st = self.settings
        gone = []
        for sid, s in list(self.sessions.items()):
            if s.ws is not None and s.stalled(now, st.send_stall_s):
                s.fall_behind(f"one frame has waited over {st.send_stall_s:g} s to be sent")
                continue
            if s.ws is None and s.detached_at is not None and now - s.detached_at >= st.detached_grace_s:
                gone.append(sid)
            elif s.ws is not None and now - s.last_input >= st.idle_timeout_s:
                s.queue_error(f"this session was closed after {st.idle_timeout_s / 60:g} minutes "
                              "without input; start again to get a new one", fatal=True)
                ws = s.ws
                s.kick()
                asyncio.ensure_future(_close_later(s, ws))
                gone.append(sid)
        # Forget the new-session buckets of addresses that have been quiet long enough to be full.
        for addr, b in list(self._new_by_client.items()):
            b.take(0)
            if b.tokens >= b.burst:
                del self._new_by_client[addr]
        self.churn += len(gone)
        for sid in gone:
            s = self.sessions.pop(sid, None)
            if s is not None and s.ws is None:
                s.closed = True
            if s is not None and self.on_reaped is not None:
                self.on_reaped(s)
        return gone

    async def run_reaper(self) -> None:
        while True:
            await asyncio.sleep(self.settings.reap_interval_s)
            try:
                gone = self.reap()
                if gone:
                    log.info("reaped %d idle sessions", len(gone))
            except Exception:  # pragma: no cover - the reaper must survive anything
                log.exception("reaper failed")

    async def keep_gc(self) -> None:
        """Keep the collector's full collections short. A full collection scans every container
        the sessions hold (about 150 ms for 250 sessions on this VM, while no session ticks or
        sends): every `gc_freeze_every_s` the survivors of a collection of what is new are frozen
        (`gc.freeze`: later full collections skip them; memory freed by reference counting as
        usual), and sooner once `gc_freeze_new_sessions` sessions were created since the last
        freeze (a burst of new pages would make the next collection scan all of them at once:
        78 ms for 500 new ones, 1.6 ms for 25, every session on the worker waiting). Frozen
        cyclic garbage is freed only when they are unfrozen and collected once: every
        `gc_full_every_s`, or sooner when the churn since the last such pass (connections
        ended, sessions closed: each leaves some, a simulation's objects refer to each other and
        so do a server connection's) reaches `gc_full_churn_fraction` of the connections and
        sessions open (and `gc_full_churn_min`), so what waits stays a fraction of what lives: a
        worker whose pages come and go keeps a flat memory (at most one such early pass every
        `gc_freeze_every_s`: pages opened and closed in a hurry cannot make it run often).
        (The collection before each freeze is a full one of what is not frozen: one of the young
        generations only was tried, and the automatic full collections then stopped, their
        threshold being set by the last full one, so closed sessions' cyclic garbage waited the
        whole `gc_full_every_s`: the soak's workers grew 12 MB a minute instead of 1-4.)"""
        st = self.settings
        loop = asyncio.get_running_loop()
        last_freeze = last_full = loop.time()
        created = self._created  # sessions created by the last freeze
        while True:
            await asyncio.sleep(min(1.0, st.gc_freeze_every_s))
            now = loop.time()
            if (now < last_freeze + st.gc_freeze_every_s
                    and self._created - created < st.gc_freeze_new_sessions):
                continue
            last_freeze, created = now, self._created
            if now >= last_full + st.gc_full_every_s or (
                    now >= last_full + st.gc_freeze_every_s
                    and self.churn >= self._churn_for_full()):
                last_full = now
                self.churn = 0
                self.gc_full_passes += 1
                gc.unfreeze()
            gc.collect()
            gc.freeze()

    def _churn_for_full(self) -> float:
        st = self.settings
        return max(st.gc_full_churn_min,
                   st.gc_full_churn_fraction * (self.connections + len(self.sessions)))

    def start(self) -> None:
        self._reaper = asyncio.ensure_future(self.run_reaper())
        if self.settings.gc_freeze_every_s > 0:
            self._gc_task = asyncio.ensure_future(self.keep_gc())
        if self.settings.bench_stats:
            gc.callbacks.append(self._on_gc)
            self._lag_task = asyncio.ensure_future(self._measure_loop_lag())

    async def _measure_loop_lag(self) -> None:
        """Benchmarks only: how late a 10 ms timer fires (what every callback on this loop waits)."""
        loop = asyncio.get_running_loop()
        while True:
            want = loop.time() + 0.01
            await asyncio.sleep(0.01)
            self.loop_lag_s.append(max(0.0, loop.time() - want))

    def _on_gc(self, phase: str, info: dict) -> None:
        if phase == "start":
            self._gc_started = time.perf_counter()
        elif info.get("generation") == 2:
            self.gc_pauses_s.append(time.perf_counter() - self._gc_started)

    async def stop(self) -> None:
        if self._on_gc in gc.callbacks:
            gc.callbacks.remove(self._on_gc)
        if self._reaper:
            self._reaper.cancel()
        if self._lag_task:
            self._lag_task.cancel()
        if self._gc_task:
            self._gc_task.cancel()
        for s in list(self.sessions.values()):
            self.drop(s)


async def _close_later(s: Session, ws) -> None:
    await s.flush()
    s.closed = True
    await _close_quietly(ws, 4000, "idle")


async def _close_quietly(ws, code: int, reason: str, last: dict | None = None) -> None:
    """Send `last` and close with `code`; a peer that reads nothing is aborted after 2 s instead of
    holding a task (and its socket) until a ping times out."""
    if last is not None:
        try:
            await asyncio.wait_for(ws.send_text(orjson.dumps(last).decode()), 2.0)
        except Exception:
            pass
    await close_or_abort(ws, code, reason)
