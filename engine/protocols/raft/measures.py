"""Raft's named measures (engine/measures.py): one number per run, for sweeps and lessons."""

from __future__ import annotations

from ...measures import Measure


class ElectionDowntime(Measure):
    """§9.3, Figure 16: "the time to detect and replace a crashed leader". From the first crash of
    a server that was leading (its `state` record with role `down`) until a server of a higher
    term wins its election (its `state` record with role `leader`: "elected" means winning a
    majority of votes, as in the paper's measurement of the time to elect a new leader; the
    moment a majority hears of it comes one broadcast later). None if no leader crashed or none
    was elected after it before the run ended.

    The run must stage the experiment (scenarios/figure16_*.json): a leader, a synchronised
    heartbeat broadcast with some followers one entry behind (Raft's `heartbeat` action), and the
    leader crashed uniformly within its heartbeat interval (the generic `crash_target`)."""

    name = "election_downtime_ms"
    unit = "ms"
    doc = "time from the crash of the leader until a new leader is elected (§9.3, Figure 16)"

    def __init__(self, topology, config, scenario) -> None:
        super().__init__(topology, config, scenario)
        self.roles: dict[str, tuple[str, int]] = {}  # node -> (role, term) as last recorded
        self.crash_t: float | None = None
        self.crash_term = 0
        self.elected_t: float | None = None

    def __call__(self, rec: dict) -> None:
        if rec["type"] != "state" or self.elected_t is not None:
            return
        node, role = rec["node"], rec.get("role")
        term = rec.get("term", self.roles.get(node, ("", 0))[1])
        was = self.roles.get(node, ("", 0))
        self.roles[node] = (role, term)
        if self.crash_t is None:
            if role == "down" and was[0] == "leader":
                self.crash_t, self.crash_term = rec["t"], was[1]
        elif role == "leader" and term > self.crash_term:
            self.elected_t = rec["t"]

    def value(self) -> float | None:
        if self.crash_t is None or self.elected_t is None:
            return None
        return round(self.elected_t - self.crash_t, 3)

