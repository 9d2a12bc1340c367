"""Running a scenario headless: the summary `playground simulate` prints."""

from __future__ import annotations

import time
from typing import IO, Mapping

from .checkers.linearizability import LinearizabilityChecker
from .scenario import Scenario
from .sim import Simulation
from .trace import TraceWriter, summarise


def run_scenario(scn: Scenario, trace: IO[bytes] | None = None, observers=(),
                 measures: Mapping[str, type] | None = None) -> dict:
    """Run to the end; with a nemesis, also the protocol's liveness measure after the final heal
    (its `key` in the summary, null when the run ended before the heal). `measures` ({name:
    Measure subclass}, engine/measures.py) are built for the run and subscribed before it starts;
    their values come back under `measures` ({name: float or None}), present only when asked."""
    sim = Simulation(scn)
    for fn in observers:
        sim.subscribe(fn)
    made = {name: cls(sim.topology, sim.config, scn) for name, cls in (measures or {}).items()}
    for m in made.values():
        sim.subscribe(m, messages=m.messages)
    writer = None
    if trace is not None:
        writer = TraceWriter(trace, scn, sim)
        sim.subscribe(writer)
    make_liveness = sim.protocol.liveness
    liveness = None
    t0 = time.perf_counter()
    if scn.nemesis is not None and make_liveness is not None and scn.nemesis.heal_ms < scn.duration_ms:
        liveness = make_liveness(sim.topology, scn.nemesis.heal_ms, sim.config)
        sim.subscribe(liveness, messages=False)
        sim.run_until(scn.nemesis.heal_ms)  # includes the final heal, due at heal_ms
        liveness.evaluate(scn.nemesis.heal_ms)
    sim.run()
    wall = time.perf_counter() - t0
    if writer is not None:
        writer.end(sim.now_ms)
    lin = next((c for c in sim.checkers if isinstance(c, LinearizabilityChecker)), None)
    summary = summarise(
        sim.checkers,
        protocol=scn.protocol,
        nodes=scn.nodes,
        seed=scn.seed,
        events=sim.events,
        sim_ms=sim.now_ms,
        wall_s=round(wall, 4),
        speedup=round(sim.now_ms / 1000 / wall, 1) if wall > 0 else None,
        ops=lin.ops_count() if lin is not None else None,
        roles=sim.roles(),
    )
    if scn.nemesis is not None and make_liveness is not None:
        summary[make_liveness.key] = liveness.found_ms if liveness is not None else None
    if measures is not None:
        summary["measures"] = {name: m.value() for name, m in made.items()}
    return summary
