"""Run every scenario in scenarios/ and print what the compiled-engine comparison needs
(tests/engine/test_native.py runs this once as pure Python and once compiled):

    python -m tests.engine.native_probe SNAPSHOT_DIR [--restore-from DIR] [--only A,B]

For each scenario (and a few variants made here): the sha256 of its whole trace (messages included), the world's digest at the
end, and the digest reached by a world snapshotted half way, restored and run to the end. Each
half-way snapshot is written to SNAPSHOT_DIR; with --restore-from, the snapshots found there
(made by the other engine) are restored and run to the end too; --only names the scenarios to
run (default: all). The first line printed is the engine in use (engine/native.py), then one
JSON object.
"""

from __future__ import annotations

import hashlib
import io
import json
import sys
from pathlib import Path

from engine.native import describe
from engine.scenario import parse_scenario
from engine.sim import Simulation
from engine.trace import TraceWriter

SCENARIOS = Path(__file__).resolve().parents[2] / "scenarios"


def variants() -> dict[str, dict]:
    """Scenarios made here, for values compiled code could change the type of (engine/_mypyc.py):
    a constant cost of the default mean (the int 10) and a `slow` by an int factor (speed 2)."""
    d = json.loads((SCENARIOS / "lb_slow_backend_ewma.json").read_text())
    d["workload"]["cost"] = {"dist": "constant"}
    d["actions"].append({"at": 5000, "do": "slow", "node": "b2", "factor": 2})
    return {"variant_lb_constant_cost_int_slow": d}


def all_scenarios() -> dict[str, dict]:
    out = {p.stem: json.loads(p.read_text()) for p in sorted(SCENARIOS.glob("*.json"))}
    out.update(variants())
    return out


def probe(name: str, data: dict, snapshots: Path, restore_from: Path | None) -> dict:
    scn = parse_scenario(data)
    sim = Simulation(scn)
    out = io.BytesIO()
    writer = TraceWriter(out, scn, sim)
    sim.subscribe(writer)
    sim.run()
    writer.end(sim.now_ms)
    res = {"trace_sha256": hashlib.sha256(out.getvalue()).hexdigest(),
           "trace_lines": out.getvalue().count(b"\n"), "digest": sim.digest(),
           "violations": len(sim.violations)}
    half = Simulation(scn)
    half.run_until(scn.duration_ms / 2)
    blob = half.snapshot()
    (snapshots / f"{name}.pickle").write_bytes(blob)
    again = Simulation.restore(blob)
    again.run()
    res["digest_after_restore"] = again.digest()
    if restore_from is not None:
        other = Simulation.restore((restore_from / f"{name}.pickle").read_bytes())
        other.run()
        res["digest_after_restoring_the_other_engines_snapshot"] = other.digest()
    return res


def main(argv: list[str]) -> int:
    snapshots, opts = Path(argv[0]), dict(zip(argv[1::2], argv[2::2]))
    restore_from = Path(opts["--restore-from"]) if "--restore-from" in opts else None
    only = set(opts["--only"].split(",")) if "--only" in opts else None
    out = {name: probe(name, d, snapshots, restore_from) for name, d in all_scenarios().items()
           if only is None or name in only}
    print(describe())
    print(json.dumps(out, sort_keys=True))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
