"""Paxos's liveness measure (not a safety checker): how long after the nemesis's final heal until
the cluster makes progress again, under `progress_after_heal_ms`.

- Basic Paxos: a value is chosen (by the acceptors' states; 0 if it was before the heal).
- Multi-Paxos: a leader serves: a node leads with a ballot at least every live node's promise
  (no higher ballot is pending anywhere, so nothing stops its proposals).

The sweep asks for either within 10 timeouts (`bound_ms`): round timeouts (basic) or election
timeouts (multi).
"""

from __future__ import annotations

from ...checkers.base import LivenessMeasure
from .ballot import as_ballot
from .checkers import PaxosMirror
from .config import PaxosConfig


def bound_ms(config: PaxosConfig) -> float:
    """"Within 10 timeouts": election timeouts (multi) or round timeouts (basic)."""
    timeout = config.election_timeout_ms_max if config.mode == "multi" else config.retry_timeout_ms
    return 10 * timeout


class ProgressAfterHeal(LivenessMeasure):
    key = "progress_after_heal_ms"

    def __init__(self, topology, heal_ms: float, config: PaxosConfig):
        super().__init__(topology, heal_ms, config)
        servers = topology.of_kind("server")
        self.multi = config.mode == "multi"
        if self.multi:
            self.role = {n: None for n in servers}
            self.ballot = {n: None for n in servers}
            self.promised = {n: None for n in servers}
        else:
            self.mirror = PaxosMirror(0, servers, config)

    def __call__(self, rec: dict) -> None:
        if self.found_ms is not None or rec["type"] != "state":
            return
        if not self.multi:
            self.mirror.observe(rec)
            self.evaluate(rec["t"])
            return
        n = rec["node"]
        self.role[n] = rec["role"]
        if "ballot" in rec:
            self.ballot[n] = as_ballot(rec["ballot"])
        if "promised" in rec:
            self.promised[n] = as_ballot(rec["promised"])
        if rec["t"] >= self.heal_ms:
            self.evaluate(rec["t"])

    def evaluate(self, t: float) -> None:
        if self.found_ms is not None or t < self.heal_ms:
            return
        if not self.multi:
            if self.mirror.chosen.get(0):
                self.found_ms = t - self.heal_ms
            return
        live = [n for n in self.role if self.role[n] != "down"]
        for n in live:
            role, b = self.role[n], self.ballot[n]
            if b is None or not (role == "leader" or (isinstance(role, list) and "leader" in role)):
                continue
            if all(self.promised[x] is None or self.promised[x] <= b for x in live):
                self.found_ms = t - self.heal_ms
                return
