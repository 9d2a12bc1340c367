"""Chubby's liveness measure: how long after the nemesis's final heal until a replica serves as
master (its epoch established, its lease held), as `master_after_heal_ms`."""

from __future__ import annotations

from ...checkers.base import LivenessMeasure


def bound_ms(config) -> float:
    """"Soon": the master lease waited out (§2.1), then a few rounds of election."""
    return 2 * config.master_lease_ms + 10 * config.election_timeout_ms_max


class MasterAfterHeal(LivenessMeasure):
    key = "master_after_heal_ms"

    def __init__(self, topology, heal_ms: float, config=None):
        super().__init__(topology, heal_ms, config)
        self.role = {n: "replica" for n in topology.of_kind("server")}

    def __call__(self, rec: dict) -> None:
        if self.found_ms is not None or rec["type"] != "state" or rec["node"] not in self.role:
            return
        self.role[rec["node"]] = rec["role"]
        if rec["t"] >= self.heal_ms:
            self.evaluate(rec["t"])

    def evaluate(self, t: float) -> None:
        if "master" in self.role.values():
            self.found_ms = t - self.heal_ms
