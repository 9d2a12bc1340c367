"""One simulated world on one branch of its timeline: checkpoints, rewinds and forks.

The timeline is the list of every action of the current branch (the scenario's own and the user's
clicks), each with its simulated time `at`. The simulation is built from the scenario *without*
actions; the world pushes each action into it just before the clock reaches its `at`. So:

- playing forward after a rewind re-enacts the same future (like a video) until the user acts;
- acting after a rewind forks: the actions later than now are dropped, and the branch goes on;
- a share link is the scenario plus `sim.actions` (what has been applied) plus the current time,
  and replaying it reproduces the exact state (same `digest()`).

Rewinds restore the latest checkpoint (a `Simulation.snapshot()`, taken every
`checkpoint_every_ms` of simulated time, thinned when too many or too big in all:
`max_checkpoints`, `max_checkpoint_bytes`) and replay from there.

A world knows nothing of sockets, frames or wall-clock pacing: a session drives it. That is what
lets compare mode hold several worlds in unison (see `app/session/__init__.py`).
"""

from __future__ import annotations

import bisect
import time

from engine.scenario import Scenario, ScenarioError, parse_action
from engine.sim import Simulation

from .. import share
from ..settings import Settings
from ..wire import BadInput

# How often (in events) `advance` looks at the clock: about every 0.5 ms of CPU.
_CLOCK_EVERY = 50


class World:
    def __init__(self, scenario: Scenario, settings: Settings):
        self.settings = settings
        self.scenario = scenario
        self.timeline: list[dict] = sorted(scenario.to_dict().get("actions", []), key=lambda a: a["at"])
        self.base = scenario.with_(actions=[])
        self.sim = Simulation(self.base)
        self.ai = 0  # timeline[:ai] have been pushed into the simulation
        self.checkpoints: list[tuple[float, int, bytes]] = []
        self.checkpoint_every_ms = settings.checkpoint_every_ms
        self.checkpoint()
        self.horizon = self.sim.now_ms  # the furthest moment reached on this branch

    # --- checkpoints -----------------------------------------------------------------------------
    def checkpoint(self) -> None:
        cps = self.checkpoints
        t0 = time.perf_counter()
        cps.append((self.sim.now_ms, self.ai, self.sim.snapshot()))
        if (time.perf_counter() - t0) * 1000 > self.settings.checkpoint_max_ms:
            # A checkpoint holds the loop for as long as pickling the world takes, which grows
            # with the run: take them less often (a rewind replays further, a slice at a time).
            self.checkpoint_every_ms *= 2
        if len(cps) > self.settings.max_checkpoints or (
                len(cps) > 2 and sum(len(c[2]) for c in cps) > self.settings.max_checkpoint_bytes):
            # Keep the first and every other one; checkpoints get sparser as the run grows.
            self.checkpoints = [cps[0]] + cps[2::2] if len(cps) % 2 else [cps[0]] + cps[1::2]
            self.checkpoint_every_ms *= 2

    def checkpoint_due(self) -> bool:
        return self.sim.now_ms - self.checkpoints[-1][0] >= self.checkpoint_every_ms

    def rewind(self, t_ms: float) -> float:
        """Restore the latest checkpoint at or before `t_ms`; its time. (The caller replays on
        from there with `advance`; the simulation object is a new one.)"""
        i = bisect.bisect_right([c[0] for c in self.checkpoints], t_ms) - 1
        cp_t, ai, blob = self.checkpoints[max(0, i)]
        self.sim = Simulation.restore(blob)
        self.ai = ai
        return cp_t

    # --- running ---------------------------------------------------------------------------------
    def _push_action(self, a: dict) -> None:
        # `act` would schedule at now + 1 µs; a timeline action must land exactly at its recorded
        # `at` (ordering among same-time events depends on it), which is what `schedule` does.
        self.sim.schedule(a)

    def advance(self, target_ms: float, budget: int | None = None,
                deadline: float | None = None) -> bool:
        """Run to `target_ms`, pushing timeline actions as the clock reaches them. With a budget
        (events) or a deadline (`time.perf_counter()`), stop when it is spent and return False;
        calling again carries on exactly where it stopped. Without either, a checkpoint is taken at
        the end when one is due; with them, the caller takes it (`checkpoint_due`), so that one
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
        if budget is None and deadline is None and self.checkpoint_due():
            self.checkpoint()
        return True

    def next_due_ms(self) -> float | None:
        """When the next thing happens: the next event, or the next timeline action."""
        nxt = self.sim.next_event_ms()
        if self.ai < len(self.timeline):
            at = self.timeline[self.ai]["at"]
            nxt = at if nxt is None else min(nxt, at)
        return nxt

    def step(self, count: int) -> None:
        """Process exactly `count` events (timeline actions count as events)."""
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

    def _check_room(self) -> None:
        if len(self.sim.actions) >= self.settings.max_actions:
            raise BadInput(f"action: this session has recorded {self.settings.max_actions} actions, "
                           "the limit; reset to start a new run")

    def check_action(self, data: dict, variant: str | None = None) -> None:
        """Would `act(data)` be accepted now? BadInput naming the field (and the variant, in
        compare mode) when not; changes nothing. (A compare session checks every world before it
        acts in any, so a click lands in all of them or in none.)"""
        self._check_room()
        try:
            parse_action(data, self.sim.servers, protocol=self.sim.protocol).check_now(self.sim, "action")
        except ScenarioError as e:
            where = f" (in the world {variant!r})" if variant else ""
            raise BadInput(f"{e}{where}") from None

    def act(self, data: dict) -> dict:
        """A click: fork the timeline here if it has a future, record the action, apply it now."""
        self._check_room()
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
        return rec

    def share_payload(self, lesson: str | None) -> str:
        sc = self.base.with_(actions=list(self.sim.actions))
        return share.encode(sc, self.sim.now_ms, lesson)
