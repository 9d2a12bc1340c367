"""The runner: advances simulated time against the wall clock and is the only writer to the socket.

Input handlers change the world and queue frames in the outbox, then wake the runner, so frames
leave in `seq` order. Live play has a CPU budget per tick (`tick_budget_ms`): a session that cannot
keep up runs slower and says it is `behind` instead of stalling the others. Every frame is
serialised once with orjson (app/outbox.py).
"""

from __future__ import annotations

import asyncio
import hmac
import logging
import math
import time
from typing import Any

from ..limits import replay_ops_bound
from ..outbox import wire, wire_bytes
from ..transport import close_or_abort, raw_frames
from .timefmt import fmt_ms

log = logging.getLogger("playground.session")

# A timer may wake us a little before its deadline: uvloop's clock and timers count whole
# milliseconds. Within this of the due time the tick is due; otherwise the runner would spin
# through zero-length waits until the clock ticks over (which cost a whole core at 500 sessions).
_EARLY_S = 0.002


def _wake_up(fut: asyncio.Future) -> None:
    if not fut.done():
        fut.set_result(None)


def _current_task():
    try:
        return asyncio.current_task()
    except RuntimeError:
        return None


class RunnerMixin:
    # A hook (app/rooms.py): `await relay(frame, body)` for each frame, before it is sent, with the
    # bytes it was serialised to once. It keeps the session's recipe in the broker and fans the
    # frame out to the session's room. None (private sessions, one worker): nothing to do.
    relay = None

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
            # The old connection's protocol object (and its buffers) must not outlive it here:
            # it refers back to this session through its ASGI task, a cycle only a full
            # collection would break.
            if self._raw_cache is not None and self._raw_cache[0] is not self.ws:
                self._raw_cache = None

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
            if self.pause_at is not None and self.pause_at < end:
                end, why = self.pause_at, None  # a pause point: stop there, nothing to say
            target = self.sim_ref + (time.monotonic() - self.wall_ref) * 1000 * self.speed
            target = min(round(target, 3), end)
            st = self.settings
            deadline = time.perf_counter() + st.tick_budget_ms / 1000
            if target > self.sim.now_ms:
                for p in self.panes:
                    if p.world.checkpoint_due():
                        p.world.checkpoint()  # counts against this tick's budget
                # Compare mode: the worlds share the budget, and the caps apply to their sum.
                room = max(1, int(0.9 * st.max_replay_events) - self.events_total())
                ok = self.advance(target, budget=min(st.max_events_per_tick, room),
                                  deadline=deadline)
                self.behind = not ok
                if not ok:
                    self._resync_refs()  # do not accumulate a debt: fall behind gracefully
                for p in self.panes:
                    p.world.horizon = max(p.world.horizon, p.world.sim.now_ms)
            # A share link replays the run from t = 0: past 90% of the events a replay may take,
            # live play stops too (with the margin the replay's estimate needs).
            over_events = self.events_total() >= 0.9 * st.max_replay_events
            if self.sim.now_ms >= end or over_events:
                self.playing = False
                self.pause_at = None
                self.queue_events()
                if over_events:
                    self.queue_error(f"time: this session has processed {self.events_total():,} events "
                                     f"by {fmt_ms(self.sim.now_ms)}, about the most a share link "
                                     f"may replay (PLAYGROUND_MAX_REPLAY_EVENTS = "
                                     f"{st.max_replay_events:,}); rewind, reset or pick a lesson")
                elif why is not None and end < self.scenario.duration_ms:
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
        (`max_replay_ms`, and for a protocol whose state grows with its operations
        `max_replay_ops` client operations at the workload's rate, exactly as `check_replay`
        counts them), whichever comes first; with the limit's name. (The events a replay may
        take stop it too: `tick`.)"""
        sc, worlds = self.scenario, len(self.panes)
        cached = self._end_cache
        if cached is not None and cached[0] is sc and cached[1] == worlds:
            return cached[2]  # (every tick asks; it changes only with the scenario or the worlds)
        end = self._end_cache = (sc, worlds, self._shareable_end_of(sc, worlds))
        return end[2]

    def _shareable_end_of(self, sc, worlds: int) -> tuple[float, str]:
        st = self.settings
        end, why = float(sc.duration_ms), "the scenario's end"
        if st.max_replay_ms < end:
            end, why = st.max_replay_ms, f"at most {fmt_ms(st.max_replay_ms)} of simulated time"
        bound = replay_ops_bound(sc, st, worlds)  # compare mode: the worlds share the bound
        if bound is not None:
            rate, limit_ms = bound
            ops_end = math.floor(limit_ms * 1000) / 1000
            if ops_end < end:
                each = f" in all, over {worlds} worlds" if worlds > 1 else ""
                end, why = ops_end, (f"at most {st.max_replay_ops} client operations{each} at "
                                     f"{rate:g} per second")
        return end, why

    def _check_linearizability(self, force: bool = False) -> None:
        panes = self.panes
        if (panes[0].lin is None if len(panes) == 1 else all(p.lin is None for p in panes)):
            return
        now = time.monotonic()
        last = self._lin_checked_at
        if not force and last is not None and now - last < self.settings.lin_check_every_s:
            return
        self._lin_checked_at = now
        searching = [p.lin for p in self.panes if p.lin is not None]
        for lin in searching:  # compare mode: the worlds' searches share the budget
            lin.check(max(1, self.settings.lin_check_budget // len(searching)))

    # --- the connection --------------------------------------------------------------------------
    def _raw_for(self, ws):
        """The cheap write path under `ws` (app/transport.py), found once per connection."""
        cached = self._raw_cache
        if cached is None or cached[0] is not ws:
            cached = self._raw_cache = (ws, raw_frames(ws))
        return cached[1]

    async def flush(self, ws=None) -> bool:
        """Send everything queued to `ws` (the runner's own socket), in order, each frame with the
        next `seq`. False when the socket failed or this connection no longer holds the session.

        Under uvicorn a frame is one `transport.write` of its header and bytes (app/transport.py:
        no ASGI send chain, no WebSocket library framing; a third of a worker's CPU at 500
        sessions went there). While the socket's buffer is over its high-water mark the runner
        waits for it to drain, as uvicorn's own send does, with `sending_since` set, so a page that
        never reads is still found stalled and dropped (`stalled`, `fall_behind`)."""
        ws = self.ws if ws is None else ws
        raw = self._raw_for(ws) if ws is not None else None
        while self.outbox and self.ws is ws and ws is not None:
            for f, body in self.outbox.take():
                clicks = self.clicks_at if self.click_stats is not None and "acts" in f else None
                if clicks:
                    t_relay = time.monotonic()
                if self.relay is not None:
                    await self.relay(f, body)  # never raises (app/rooms.py)
                self.seq += 1
                if f["type"] == "snapshot":
                    self._snapshot_pending = False
                self.sending_since = time.monotonic()
                dur = None
                if self.durable_seq > self.dur_told:
                    dur = self.dur_told = self.durable_seq
                try:
                    if raw is None:
                        await ws.send_text(wire(body, self.seq, dur))
                    else:
                        if not raw.writable.is_set():
                            await raw.writable.wait()
                        if not raw.write(wire_bytes(body, self.seq, dur)):
                            return False  # the connection is closing
                except Exception:
                    return False
                finally:
                    if clicks:
                        self._count_clicks(t_relay)
                    self.sending_since = None
        return ws is not None and self.ws is ws

    def _count_clicks(self, t_relay: float) -> None:
        """Benchmarks only: each click this frame carries, as (handled -> relay, the relay, the
        send), into the manager's `click_parts_s`."""
        t_sent = time.monotonic()
        for t_in in self.clicks_at:
            self.click_stats.append((t_relay - t_in, self.sending_since - t_relay, t_sent - self.sending_since))
        self.clicks_at.clear()

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
