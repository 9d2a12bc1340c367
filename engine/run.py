"""Running a scenario headless: the summary `playground simulate` prints."""

from __future__ import annotations

import time
from typing import IO

from .scenario import Scenario
from .sim import Simulation
from .trace import TraceWriter, summarise


class LeaderAfterHeal:
    """Liveness, measured (not a safety checker): how long after the nemesis's final heal until
    there is a leader whose term is the highest term among the live servers."""

    def __init__(self, servers: list[str], heal_ms: float):
        self.heal_ms = heal_ms
        self.term = {n: 0 for n in servers}
        self.role = {n: "follower" for n in servers}
        self.found_ms: float | None = None

    def __call__(self, rec: dict) -> None:
        if self.found_ms is not None or rec["type"] != "state":
            return
        n = rec["node"]
        self.term[n], self.role[n] = rec["term"], rec["role"]
        if rec["t"] >= self.heal_ms:
            self.evaluate(rec["t"])

    def evaluate(self, t: float) -> None:
        live = [n for n in self.term if self.role[n] != "down"]
        if not live:
            return
        top = max(self.term[n] for n in live)
        if any(self.role[n] == "leader" and self.term[n] == top for n in live):
            self.found_ms = t - self.heal_ms


def run_scenario(scn: Scenario, trace: IO[bytes] | None = None, observers=()) -> dict:
    sim = Simulation(scn)
    for fn in observers:
        sim.subscribe(fn)
    writer = None
    if trace is not None:
        writer = TraceWriter(trace, scn)
        sim.subscribe(writer)
    liveness = None
    t0 = time.perf_counter()
    if scn.nemesis is not None and scn.nemesis.heal_ms < scn.duration_ms:
        liveness = LeaderAfterHeal(sim.servers, scn.nemesis.heal_ms)
        sim.subscribe(liveness, messages=False)
        sim.run_until(scn.nemesis.heal_ms)  # includes the final heal, due at heal_ms
        liveness.evaluate(scn.nemesis.heal_ms)
    sim.run()
    wall = time.perf_counter() - t0
    if writer is not None:
        writer.end(sim.now_ms)
    lin_checker = next(c for c in sim.checkers if c.name == "Linearizability")
    summary = summarise(
        sim.checkers,
        protocol=scn.protocol,
        nodes=scn.nodes,
        seed=scn.seed,
        events=sim.events,
        sim_ms=sim.now_ms,
        wall_s=round(wall, 4),
        speedup=round(sim.now_ms / 1000 / wall, 1) if wall > 0 else None,
        ops=lin_checker.ops_count(),
        roles=sim.roles(),
    )
    if scn.nemesis is not None:  # null when the run ended before the final heal
        summary["leader_after_heal_ms"] = liveness.found_ms if liveness is not None else None
    return summary
