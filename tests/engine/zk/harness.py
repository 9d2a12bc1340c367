"""Helpers for the ZooKeeper tests: scenarios, runs that keep their records, sweeps."""

from __future__ import annotations

import os
from multiprocessing import get_context

from engine.run import run_scenario
from engine.scenario import parse_scenario
from engine.sim import Simulation

FAULTS = ["crash", "partition", "cut", "loss", "pause"]


def scenario(**kw) -> dict:
    d = {"protocol": "zk", "nodes": 3, "seed": 1, "duration_ms": 3000}
    d.update(kw)
    return d


def run(d: dict, until_ms: float | None = None, messages: bool = False):
    """Run a scenario dict; returns (sim, records)."""
    sim = Simulation(parse_scenario(d))
    recs: list[dict] = []
    sim.subscribe(recs.append, messages=messages)
    sim.run_until(until_ms if until_ms is not None else d["duration_ms"])
    return sim, recs


def nemesis_scenario(seed: int, nodes: int, duration_ms: float, heal_ms: float, config=None) -> dict:
    return scenario(seed=seed, nodes=nodes, duration_ms=duration_ms,
                    config={"clients": 3, **(config or {})},
                    nemesis={"interval_ms": 500, "faults": FAULTS, "heal_ms": heal_ms})


class Tally:
    """Counts what a run did: expiries, accepted and rejected storage writes, client pauses."""

    def __init__(self):
        self.expired: set[str] = set()
        self.accepted = self.rejected = self.client_pauses = 0

    def __call__(self, rec):
        t = rec["type"]
        if t == "txn" and rec["op"] == "session_expire":
            self.expired.add(rec["session"])
        elif t == "write":
            self.accepted += rec["accepted"]
            self.rejected += not rec["accepted"]
        elif t == "fault" and rec["do"] == "pause" and rec["node"].startswith("c"):
            self.client_pauses += 1


def one(args):
    seed, nodes, duration_ms, heal_ms, config = args
    tally = Tally()
    s = run_scenario(parse_scenario(nemesis_scenario(seed, nodes, duration_ms, heal_ms, config)),
                     observers=(tally,))
    return (seed, nodes, s["violations"], s["established_after_heal_ms"], len(tally.expired),
            tally.accepted, tally.rejected, tally.client_pauses)


def sweep(seeds, node_counts, duration_ms, heal_ms, config=None, job=one) -> list:
    """`job((seed, nodes, duration_ms, heal_ms, config))` for every seed and node count, on every
    core (Chubby's sweep passes its own `job`)."""
    jobs = [(s, n, duration_ms, heal_ms, config) for s in seeds for n in node_counts]
    with get_context("fork").Pool(os.cpu_count() or 2) as pool:
        return pool.map(job, jobs, chunksize=8)
