"""Raft's measures for sweeps (engine/measures.py): commit latency and leader changes.

(`election_downtime_ms`, the paper's §9.3 experiment, lives in measures.py beside this file.)
"""

from __future__ import annotations

from ...measures import Measure
from ...stats import percentile
from .node import LEADER


class CommitLatency(Measure):
    """The median latency of the clients' writes that committed: from a `write` invocation to its
    `ok` completion (`client` records), redirects to the leader and retries included. Writes that
    failed or timed out are not counted. A client's write is acknowledged only once the leader has
    applied it, i.e. once a majority stored it (Raft, §5.3: "When the entry has been safely
    replicated, the leader applies the entry to its state machine and returns the result of that
    execution to the client"). None when no write committed."""

    name = "commit_latency_ms"
    unit = "ms"
    doc = "median client write latency (invocation to ok), committed writes only"

    def __init__(self, topology, config, scenario):
        super().__init__(topology, config, scenario)
        self.invoked: dict[tuple, float] = {}
        self.latencies: list[float] = []

    def __call__(self, rec: dict) -> None:
        if rec["type"] != "client" or rec.get("f") != "write":
            return
        key = (rec["client"], rec["req"])
        if rec["op"] == "invoke":
            self.invoked[key] = rec["t"]
        elif rec["op"] == "ok" and key in self.invoked:
            self.latencies.append(rec["t"] - self.invoked.pop(key))
        else:
            self.invoked.pop(key, None)

    def value(self) -> float | None:
        return percentile(sorted(self.latencies), 50) if self.latencies else None


class LeaderChanges(Measure):
    """How many times leadership changed hands after the first leader: the elections won (a
    server becoming leader, §5.2) minus the first one. A stable run has 0; each leader lost to a
    crash or a partition and replaced adds one (re-elected in a later term, it counts again).
    None when no server ever became leader."""

    name = "leader_changes"
    doc = "elections won after the first (0: one leader throughout)"

    def __init__(self, topology, config, scenario):
        super().__init__(topology, config, scenario)
        self.role = {n: None for n in topology.of_kind("server")}
        self.won = 0

    def __call__(self, rec: dict) -> None:
        if rec["type"] != "state" or rec["node"] not in self.role:
            return
        role = rec["role"]
        if role == LEADER and self.role[rec["node"]] != LEADER:
            self.won += 1
        self.role[rec["node"]] = role

    def value(self) -> float | None:
        return self.won - 1 if self.won else None


RAFT_LAB_MEASURES = {m.name: m for m in (CommitLatency, LeaderChanges)}
