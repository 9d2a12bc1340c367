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

The runner is the only writer to the socket: input handlers change the world and queue frames in
the outbox, then wake the runner, so frames leave in `seq` order. Every frame is serialised once
with orjson.
"""

from __future__ import annotations

import asyncio
import bisect
import logging
import math
import random
import time
from typing import Any

import orjson

from engine.protocols import get_protocol
from engine.scenario import MUTATIONS, Scenario, ScenarioError
from engine.sim import Simulation

from . import share
from .lessons import LessonFile
from .protocols import get_adapter
from .settings import Settings
from .wire import (ActionIn, BadInput, Check, Configure, Lesson, Load, NewSeed, Pause, Play, Reset,
                   Resync, Seek, Share, Speed, Step, parse_inbound)

log = logging.getLogger("playground.session")


# A timer may wake us a little before its deadline: uvloop's clock and timers count whole
# milliseconds. Within this of the due time the tick is due; otherwise the runner would spin
# through zero-length waits until the clock ticks over (which cost a whole core at 500 sessions).
_EARLY_S = 0.002


def _wake_up(fut: asyncio.Future) -> None:
    if not fut.done():
        fut.set_result(None)


class Session:
    def __init__(self, sid: str, settings: Settings, lessons: dict[str, LessonFile],
                 scenario: Scenario, lesson: str | None = None, speed: float | None = None):
        self.id = sid
        self.settings = settings
        self.lessons = lessons
        self.seq = 0
        self.outbox: list[dict] = []
        self.ws = None
        self.task: asyncio.Task | None = None
        self._wake: asyncio.Future | None = None
        self.closed = False
        self.last_input = time.monotonic()
        self.detached_at: float | None = None
        self.speed = self._clamp_speed(speed if speed is not None else settings.default_speed)
        self.playing = True
        self.behind = False
        self.sim_ref = 0.0
        self.wall_ref = 0.0
        self._lin_checked_at = 0.0
        self.stats: list[float] | None = None  # set by the manager when bench_stats is on
        self.phase_s = 0.0  # where in each frame interval this session ticks (set by the manager)
        self.load(scenario, lesson)

    # --- building and rebuilding the world -------------------------------------------------------
    def load(self, scenario: Scenario, lesson: str | None, until_ms: float = 0.0,
             playing: bool | None = None) -> None:
        """Start the session over on `scenario` (its actions become the timeline), at `until_ms`."""
        if scenario.nodes > self.settings.max_nodes:
            raise ScenarioError(f"scenario.nodes: at most {self.settings.max_nodes} nodes per "
                                f"session (asked for {scenario.nodes})")
        if until_ms > self.settings.max_replay_ms:
            raise ScenarioError(f"t: at most {self.settings.max_replay_ms:g} ms can be replayed "
                                f"(asked for {until_ms:g})")
        self.adapter = get_adapter(scenario.protocol)
        self.protocol = get_protocol(scenario.protocol)
        self.lesson = lesson
        self.scenario = scenario
        self.timeline: list[dict] = [a for a in scenario.to_dict().get("actions", [])]
        self.timeline.sort(key=lambda a: a["at"])
        self.base = scenario.with_(actions=[])
        self.sim = Simulation(self.base)
        self.ai = 0  # timeline[:ai] have been pushed into the simulation
        self.checkpoints: list[tuple[float, int, bytes]] = []
        self.checkpoint_every_ms = self.settings.checkpoint_every_ms
        self._attach()
        self._checkpoint()
        if until_ms > 0:
            self.advance(until_ms, budget=None)
        self.horizon = self.sim.now_ms
        if playing is not None:
            self.playing = playing
        self._resync_refs()
        self.outbox.clear()
        if until_ms <= 0:
            self.pending_recs.clear()
        # else the replay to `until_ms` (a share link, an import) is told in words after `hello`.
        self.queue_hello()
        self.queue_snapshot()

    def _attach(self) -> None:
        """(Re)subscribe to the simulation: observers are not part of snapshots."""
        self.pending_recs: list[dict] = []
        self.sim.subscribe(self._on_record)
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
        cps.append((self.sim.now_ms, self.ai, self.sim.snapshot()))
        if len(cps) > self.settings.max_checkpoints:
            # Keep the first and every other one; checkpoints get sparser as the run grows.
            self.checkpoints = [cps[0]] + cps[2::2] if len(cps) % 2 else [cps[0]] + cps[1::2]
            self.checkpoint_every_ms *= 2

    def _push_action(self, a: dict) -> None:
        # `act` would schedule at now + 1 µs; a timeline action must land exactly at its recorded
        # `at` (ordering among same-time events depends on it), which is what `schedule` does.
        self.sim.schedule(a)

    def advance(self, target_ms: float, budget: int | None) -> bool:
        """Run to `target_ms`, pushing timeline actions as the clock reaches them. With a budget,
        stop after that many events and return False (the session fell behind)."""
        sim, tl = self.sim, self.timeline
        n = 0
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
            # run_until (not step) so a cancelled timer at the head never makes us overshoot.
            before = sim.events
            sim.run_until(nxt)
            n += sim.events - before
        sim.run_until(target_ms)
        if sim.now_ms - self.checkpoints[-1][0] >= self.checkpoint_every_ms:
            self._checkpoint()
        return True

    def _resync_refs(self) -> None:
        self.sim_ref = self.sim.now_ms
        self.wall_ref = time.monotonic()

    def _clamp_speed(self, v: float) -> float:
        return min(self.settings.max_speed, max(self.settings.min_speed, v))

    # --- time controls -------------------------------------------------------------------------
    def seek(self, t_ms: float) -> None:
        """Go to simulated time t (back or forward) on the current branch."""
        if t_ms > self.settings.max_replay_ms:
            raise BadInput(f"control.t: at most {self.settings.max_replay_ms:g} ms")
        t_ms = round(t_ms, 3)
        back = t_ms < self.sim.now_ms
        if back:
            i = bisect.bisect_right([c[0] for c in self.checkpoints], t_ms) - 1
            cp_t, ai, blob = self.checkpoints[max(0, i)]
            self.sim = Simulation.restore(blob)
            self.ai = ai
            self._attach()
        self.advance(t_ms, budget=None)
        self.horizon = max(self.horizon, self.sim.now_ms)
        if back:
            # The page already told what happened up to here (it drops what is now the future);
            # the replay from the checkpoint only brings each node's last-told state up to date.
            for r in self.pending_recs:
                if r["type"] == "state":
                    self.adapter.describe(r, self.told)
            self.pending_recs.clear()
        # Forward, the records stay: the next frame tells the skipped stretch in words (capped).
        self._resync_refs()

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
        self.ai = len(self.timeline)
        self.advance(rec["at"], budget=None)  # apply it now, even when paused
        self.horizon = self.sim.now_ms
        self._resync_refs()
        return rec

    def share_payload(self) -> str:
        sc = self.base.with_(actions=list(self.sim.actions))
        return share.encode(sc, self.sim.now_ms, self.lesson)

    # --- input -----------------------------------------------------------------------------------
    def handle(self, text: str | bytes) -> None:
        """One inbound frame. Bad input becomes an `error` frame; the session keeps running."""
        self.last_input = time.monotonic()
        try:
            msg = parse_inbound(text, self.settings.max_frame_bytes)
            self._apply(msg)
        except BadInput as e:
            self.queue_error(str(e))
        except ScenarioError as e:
            self.queue_error(str(e))
        self.kick()

    def _apply(self, msg: Any) -> None:
        s = self.settings
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
            self.seek(msg.t)
            self.playing = False
            self.queue_snapshot()
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
            sc, t, lesson = share.decode(msg.share, s.max_share_chars)
            self.load(sc, lesson, until_ms=t, playing=False)
        elif isinstance(msg, Share):
            self.outbox.append({"type": "share", "payload": self.share_payload()})
        elif isinstance(msg, Resync):
            self.queue_snapshot()
        elif isinstance(msg, Check):
            self._check_linearizability(force=True)
            self.queue_snapshot()

    def _configure(self, msg: Configure) -> None:
        sc = self.scenario
        changes: dict[str, Any] = {"actions": []}
        if msg.nodes is not None:
            if msg.nodes > self.settings.max_nodes:
                raise BadInput(f"control.nodes: at most {self.settings.max_nodes} nodes per session")
            changes["nodes"] = msg.nodes
        cfg = sc.config.model_dump(mode="json")
        if msg.mutations is not None:
            bad = [m for m in msg.mutations if m not in MUTATIONS]
            if bad:
                raise BadInput(f"control.mutations: unknown mutation {bad[0]!r} "
                               f"(known: {', '.join(sorted(MUTATIONS))})")
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

    async def run(self) -> None:
        """Advance simulated time against the wall clock and send frames, until detached.

        Ticks fall on a fixed grid, `interval` apart, offset by this session's `phase_s`: the
        manager spreads the phases evenly over the interval, so 500 sessions make a steady trickle
        of work instead of bursts (a burst makes every session in it late). A late tick is caught
        up (the next one follows at once) so a session still gets its 20 frames a second; only
        when more than `frame_catch_up` ticks behind does the runner skip ahead, on the same grid.
        """
        loop = asyncio.get_running_loop()
        interval = self.settings.frame_interval_ms / 1000
        catch_up = self.settings.frame_catch_up * interval
        epoch = time.time() - loop.time()
        start = loop.time()
        due = start + (self.phase_s - start) % interval
        while not self.closed and self.ws is not None:
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
            if not await self.flush():
                break
            if ticked and self.stats is not None:
                self.stats.append(loop.time() - tick_due)  # server-side lateness of this tick's frame

    def tick(self, due_wall_ms: float) -> None:
        if self.playing:
            end = self.scenario.duration_ms
            target = self.sim_ref + (time.monotonic() - self.wall_ref) * 1000 * self.speed
            target = min(round(target, 3), end)
            if target > self.sim.now_ms:
                ok = self.advance(target, budget=self.settings.max_events_per_tick)
                self.behind = not ok
                if not ok:
                    self._resync_refs()  # do not accumulate a debt: fall behind gracefully
                self.horizon = max(self.horizon, self.sim.now_ms)
            if self.sim.now_ms >= end:
                self.playing = False
                self.queue_events()
                self.queue_snapshot()
                return
            self._check_linearizability()
            self.queue_events(due_wall_ms)
        elif self.pending_recs:
            self.queue_events()

    def _check_linearizability(self, force: bool = False) -> None:
        lin = self.lin
        if lin is None:
            return
        now = time.monotonic()
        if not force and now - self._lin_checked_at < self.settings.lin_check_every_s:
            return
        self._lin_checked_at = now
        lin.check(self.settings.lin_check_budget)

    async def flush(self) -> bool:
        ws = self.ws
        while self.outbox and ws is not None:
            frames, self.outbox = self.outbox, []
            for f in frames:
                self.seq += 1
                f["seq"] = self.seq
                if "t" not in f:
                    f["t"] = self.sim.now_ms
                try:
                    await ws.send_text(orjson.dumps(f).decode())
                except Exception:
                    return False
            ws = self.ws
        return ws is not None

    # --- frames ----------------------------------------------------------------------------------
    def queue_error(self, message: str) -> None:
        self.outbox.append({"type": "error", "message": message})

    def queue_hello(self) -> None:
        sc = self.scenario
        sim = self.sim
        lf = self.lessons.get(self.lesson) if self.lesson else None
        self.outbox.append({
            "type": "hello",
            "session": self.id,
            "protocol": sc.protocol,
            "scenario": self.base.to_dict(),
            "layout": {"nodes": sim.servers,
                       "clients": [c for c in sim.clients] + ["user"]},
            "lesson": ({"name": lf.name, "title": lf.title, "notes": lf.notes, "suggest": lf.suggest}
                       if lf else ({"name": self.lesson, "title": sc.title or self.lesson,
                                    "notes": "", "suggest": ""} if self.lesson else None)),
            "mutations": MUTATIONS,
            "active_mutations": list(sc.config.mutations),
            "invariants": [[n, e] for n, e in self.protocol.invariants],
            "timeout_ms": [sc.config.election_timeout_ms_min, sc.config.election_timeout_ms_max],
            "end": sc.duration_ms,
            "limits": {"min_speed": self.settings.min_speed, "max_speed": self.settings.max_speed,
                       "max_nodes": self.settings.max_nodes,
                       "frame_interval_ms": self.settings.frame_interval_ms},
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
        lw = self.settings.log_window
        nodes = {nid: self.adapter.node(v, True, lw) for nid, v in sim.views().items()}
        self.shown = set(sim.flight)
        self.outbox.append({
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
        if not recs and due_wall_ms is None:
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
        # Checkers only find violations in records they observe: count them only after records.
        vc = self._violation_count() if recs else self.violation_count
        lin_state = None if self.lin is None else self.lin.result
        if vc != self.violation_count or lin_state != getattr(self, "_lin_told", True):
            self.violation_count = vc
            self._lin_told = lin_state
            frame["inv"] = self._invariants()
        if self.behind:
            frame["behind"] = True
        self.outbox.append(frame)


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


__all__ = ["Session", "default_scenario", "live_workload"]
