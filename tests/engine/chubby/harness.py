"""Helpers for the Chubby tests: scenarios, runs (ZooKeeper's `run`), sweeps with the nemesis."""

from __future__ import annotations

from engine.run import run_scenario
from engine.scenario import parse_scenario

from ..zk.harness import FAULTS, run  # noqa: F401  (run: re-exported for the tests)
from ..zk.harness import sweep as zk_sweep

# Lesson-scale timings: a client paused for a nemesis interval (500 ms) outlives its session lease
# and its grace period, so sessions are lost and locks wait out lock-delay.
CELL = {"clients": 3, "master_lease_ms": 300.0, "session_lease_ms": 400.0,
        "grace_period_ms": 800.0, "lock_delay_ms": 300.0}


def scenario(**kw) -> dict:
    d = {"protocol": "chubby", "nodes": 3, "seed": 1, "duration_ms": 3000, "config": dict(CELL)}
    d.update(kw)
    return d


def nemesis_scenario(seed: int, nodes: int, duration_ms: float, heal_ms: float, config=None) -> dict:
    return scenario(seed=seed, nodes=nodes, duration_ms=duration_ms, config={**CELL, **(config or {})},
                    nemesis={"interval_ms": 500, "faults": FAULTS, "heal_ms": heal_ms})


class Tally:
    """What a run did: session events, masters' epochs, storage writes, client pauses."""

    def __init__(self):
        self.events: dict[str, int] = {}
        self.epochs = 0
        self.accepted = self.client_pauses = 0

    def __call__(self, rec):
        t = rec["type"]
        if t == "session":
            self.events[rec["event"]] = self.events.get(rec["event"], 0) + 1
        elif t == "txn" and rec["op"] == "epoch":
            self.epochs = max(self.epochs, rec["epoch"])
        elif t == "write":
            self.accepted += rec["accepted"]
        elif t == "fault" and rec["do"] == "pause" and rec["node"].startswith("c"):
            self.client_pauses += 1


def one(args):
    seed, nodes, duration_ms, heal_ms, config = args
    tally = Tally()
    s = run_scenario(parse_scenario(nemesis_scenario(seed, nodes, duration_ms, heal_ms, config)),
                     observers=(tally,))
    return {"seed": seed, "nodes": nodes, "violations": s["violations"],
            "master_after_heal_ms": s["master_after_heal_ms"], "events": tally.events,
            "epochs": tally.epochs, "accepted": tally.accepted, "client_pauses": tally.client_pauses}


def sweep(seeds, node_counts, duration_ms, heal_ms, config=None) -> list[dict]:
    return zk_sweep(seeds, node_counts, duration_ms, heal_ms, config, job=one)
