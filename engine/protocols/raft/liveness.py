"""Raft's liveness measure: a leader soon after the nemesis's final heal."""

from __future__ import annotations

from ...checkers.base import LivenessMeasure


class LeaderAfterHeal(LivenessMeasure):
    """How long after the final heal until there is a leader whose term is the highest term among
    the live servers (the sweep asks for one within 10 election timeouts)."""

    key = "leader_after_heal_ms"

    def __init__(self, topology, heal_ms: float, config=None):
        super().__init__(topology, heal_ms, config)
        servers = topology.of_kind("server")
        self.term = {n: 0 for n in servers}
        self.role = {n: "follower" for n in servers}

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
