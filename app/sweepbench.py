"""`playground bench --sweep`: sweep throughput (runs per second of wall time) with 1 and 2 local
worker processes and on a local Dask cluster of 2 worker processes, on the same grid:
scenarios/nemesis.json (5 servers), 3 s runs. Each figure is the whole `sweep()` call, files
written to a temporary folder (the local pool is forked inside it, in milliseconds; the Dask
cluster is started before and its start-up reported apart); the tables the three produce are
compared byte for byte."""

from __future__ import annotations

import os
import tempfile
import time
from pathlib import Path

import orjson

from engine.bench import _calibration_ms
from engine.sweep import Grid, validate

from .sweep import sweep

SCENARIO = Path(__file__).resolve().parent.parent / "scenarios" / "nemesis.json"


def run_sweep_bench(quick: bool = False) -> dict:
    base = orjson.loads(SCENARIO.read_bytes())
    base["duration_ms"] = 3000
    grid = Grid(seeds=tuple(range(200 if quick else 1000)), measures=("commit_latency_ms", "leader_changes"))
    validate(base, grid)
    out: dict = {"scenario": SCENARIO.name, "nodes": base["nodes"], "duration_ms": base["duration_ms"],
                 "runs": len(grid), "cores": os.cpu_count(), "calibration_loop_ms": _calibration_ms(),
                 "load_average_1m": round(os.getloadavg()[0], 2)}
    tables = {}
    with tempfile.TemporaryDirectory() as d:
        for workers in (1, 2):
            path = os.path.join(d, f"w{workers}.jsonl")
            o = sweep(base, grid, path, workers=workers)
            out[f"runs_per_s_{workers}_worker{'s' if workers > 1 else ''}"] = round(len(grid) / o.wall_s, 1)
            tables[workers] = Path(path).read_bytes()
        out["ratio_2_to_1"] = round(out["runs_per_s_2_workers"] / out["runs_per_s_1_worker"], 2)
        try:
            from dask.distributed import LocalCluster
        except ImportError:
            out["dask"] = "not installed (pip install 'ds-playground[lab]')"
        else:
            t0 = time.perf_counter()
            with LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                              dashboard_address=None) as cluster:
                out["dask_cluster_start_s"] = round(time.perf_counter() - t0, 2)
                path = os.path.join(d, "dask.jsonl")
                o = sweep(base, grid, path, scheduler=cluster.scheduler_address)
                out["runs_per_s_dask_2_workers"] = round(len(grid) / o.wall_s, 1)
                tables["dask"] = Path(path).read_bytes()
    out["tables_identical"] = len(set(tables.values())) == 1
    out["load_average_1m_after"] = round(os.getloadavg()[0], 2)
    return out
