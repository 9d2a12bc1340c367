"""Small helpers shared by the engine tests."""

from __future__ import annotations

import json
from pathlib import Path

from engine.scenario import parse_scenario
from engine.sim import Simulation

ROOT = Path(__file__).resolve().parents[2]
SCENARIOS = ROOT / "scenarios"


def load(name: str, **changes) -> dict:
    d = json.loads((SCENARIOS / f"{name}.json").read_text())
    d.update(changes)
    return d


def run(scn: dict, until_ms: float | None = None):
    """Run a scenario dict; returns (sim, records)."""
    s = parse_scenario(scn)
    sim = Simulation(s)
    recs: list[dict] = []
    sim.subscribe(recs.append)
    sim.run_until(s.duration_ms if until_ms is None else until_ms)
    return sim, recs


def states(recs, node=None):
    return [r for r in recs if r["type"] == "state" and (node is None or r["node"] == node)]


def leaders(recs):
    """(t, node, term) every time a node reports itself leader for a new term."""
    seen, out = set(), []
    for r in states(recs):
        if r["role"] == "leader" and (r["node"], r["term"]) not in seen:
            seen.add((r["node"], r["term"]))
            out.append((r["t"], r["node"], r["term"]))
    return out


def invariants_broken(sim) -> set[str]:
    return {v["invariant"] for v in sim.violations}


class FakeContext:
    """Collects a node's effects, for unit tests that drive one node by hand."""

    def __init__(self, now_us: int = 0, node_id: str = "n1"):
        self.now_us = now_us
        self.node_id = node_id
        self.sent: list[tuple[str, dict]] = []
        self.timers: dict[str, int] = {}
        self.persisted = 0  # how many times the node said its persistent state changed

    def send(self, to, msg):
        self.sent.append((to, msg))

    def set_timer(self, name, delay_us):
        self.timers[name] = self.now_us + delay_us

    def cancel_timer(self, name):
        self.timers.pop(name, None)

    def persist(self):
        self.persisted += 1

    def of_kind(self, kind):
        return [(to, m) for to, m in self.sent if m["kind"] == kind]
