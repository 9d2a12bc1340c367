"""ZooKeeper's liveness measure: how long after the nemesis's final heal until a leader is
established (Broadcast) in the highest epoch among the live servers, as
`established_after_heal_ms`."""

from __future__ import annotations

from ...checkers.base import LivenessMeasure


def bound_ms(config) -> float:
    """"Soon": a few rounds of failure detection, election and synchronisation."""
    return 10 * (2 * config.sync_limit_ticks * config.tick_ms + 2 * config.notify_ms)


class EstablishedAfterHeal(LivenessMeasure):
    key = "established_after_heal_ms"

    def __init__(self, topology, heal_ms: float, config=None):
        super().__init__(topology, heal_ms, config)
        self.state = {n: ("looking", "election", 0) for n in topology.of_kind("server")}

    def __call__(self, rec: dict) -> None:
        if self.found_ms is not None or rec["type"] != "state" or rec["node"] not in self.state:
            return
        self.state[rec["node"]] = (rec["role"], rec["phase"], rec["epoch"])
        if rec["t"] >= self.heal_ms:
            self.evaluate(rec["t"])

    def evaluate(self, t: float) -> None:
        live = [s for s in self.state.values() if s[0] != "down"]
        if not live:
            return
        top = max(s[2] for s in live)
        if any(s[0] == "leading" and s[1] == "broadcast" and s[2] == top for s in live):
            self.found_ms = t - self.heal_ms
