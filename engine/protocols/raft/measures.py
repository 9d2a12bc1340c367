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



class BroadcastTime(Measure):
    """§5.6: the broadcast time, "the average time it takes a server to send RPCs in parallel to
    every server in the cluster and receive their responses" (thesis §9.4: "network round trip
    plus disk write"). One sample: from the first instant a leader sends AppendEntries carrying
    entries to several followers at once (each must write them before it answers) until the last
    of those followers' successful answers reaches it. The time the RPCs wait for the leader's own
    write is not counted (they have not been sent yet). None if no such broadcast completed.

    The run must stage one: a leader appending an entry that every follower gets (Raft's `lag`
    action with `followers: 0`, as `playground bench --figure16` does)."""

    name = "broadcast_time_ms"
    unit = "ms"
    doc = "time for a leader's AppendEntries with entries to reach every follower and be answered"
    messages = True

    def __init__(self, topology, config, scenario) -> None:
        super().__init__(topology, config, scenario)
        self.sent: dict[int, tuple[str, str]] = {}  # AppendEntries id -> (leader, follower)
        self.waiting: set[str] = set()  # followers not yet answered
        self.leader: str | None = None
        self.t0: float | None = None
        self.t1: float | None = None
        self.acks: dict[int, str] = {}  # response id -> follower (sent to the leader)
        self.index = 0  # the last entry of the broadcast

    def __call__(self, rec: dict) -> None:
        if self.t1 is not None:
            return
        kind = rec["type"]
        if kind == "send":
            msg = rec["msg"]
            if self.t0 is None and msg.get("kind") == "AppendEntries" and msg["entries"]:
                self.leader, self.t0 = rec["from"], rec["t"]
                self.index = msg["prev_log_index"] + len(msg["entries"])
            if (self.t0 == rec["t"] and rec["from"] == self.leader
                    and msg.get("kind") == "AppendEntries" and msg["entries"]):
                self.waiting.add(rec["to"])
            elif (self.t0 is not None and rec["to"] == self.leader
                  and msg.get("kind") == "AppendEntriesResponse" and msg["success"]
                  and msg["match_index"] >= self.index):
                self.acks[rec["id"]] = rec["from"]
        elif kind == "deliver" and rec["id"] in self.acks:
            self.waiting.discard(self.acks.pop(rec["id"]))
            if not self.waiting:
                self.t1 = rec["t"]

    def value(self) -> float | None:
        return None if self.t1 is None else round(self.t1 - self.t0, 3)
