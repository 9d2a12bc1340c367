"""ZooKeeper's measures for sweeps (engine/measures.py): time to an established leader, and the
lock's handover time."""

from __future__ import annotations

from ...measures import Measure
from .liveness import EstablishedAfterHeal


class ElectTime(Measure):
    """When a leader was first established, in ms since the run began: a server `leading` in
    phase `broadcast` in the highest epoch among the live servers, i.e. fast leader election,
    discovery and synchronisation all done (Junqueira, Reed and Serafini, "Zab", DSN 2011, §III-
    §IV). The liveness measure's test (liveness.py), applied from t = 0 instead of from a heal.
    None when no leader was established."""

    name = "elect_ms"
    unit = "ms"
    doc = "time from the start until a leader is established (leading, in broadcast)"

    def __init__(self, topology, config, scenario):
        super().__init__(topology, config, scenario)
        self.established = EstablishedAfterHeal(topology, 0.0, config)

    def __call__(self, rec: dict) -> None:
        self.established(rec)

    def value(self) -> float | None:
        return self.established.found_ms


class LockHandover(Measure):
    """The lock recipe's handover (ZooKeeper's recipes, "Locks"): from the moment the holder lost
    the lock (its client's `state` record no longer holding it: it released, or crashed) while
    another client was waiting, to the moment the next client holds it. A crashed holder's lock
    passes on only once its session expires and the leader deletes its ephemeral node, so this is
    mostly the session timeout. The run's longest such handover (the one a staged crash causes);
    None when no lock passed from one holder to a waiting client."""

    name = "lock_handover_ms"
    unit = "ms"
    doc = "longest wait from a holder's loss of the lock to the next holder, with a waiter"

    def __init__(self, topology, config, scenario):
        super().__init__(topology, config, scenario)
        self.clients = frozenset(topology.of_kind("client"))
        self.role: dict[str, str] = {}
        self.holder: str | None = None
        self.lost_ms: float | None = None  # when the last holder let go with someone waiting
        self.longest: float | None = None

    def __call__(self, rec: dict) -> None:
        if rec["type"] != "state" or rec["node"] not in self.clients:
            return
        c, t = rec["node"], rec["t"]
        self.role[c] = rec["role"]
        holds = bool(rec.get("holds_lock"))
        if holds and c != self.holder:
            if self.lost_ms is not None:
                took = t - self.lost_ms
                self.longest = took if self.longest is None else max(self.longest, took)
            self.holder, self.lost_ms = c, None
        elif not holds and c == self.holder:
            self.holder = None
            waiting = any(r == "waiter" for n, r in self.role.items() if n != c)
            self.lost_ms = t if waiting else None

    def value(self) -> float | None:
        return self.longest


ZK_MEASURES = {m.name: m for m in (ElectTime, LockHandover)}
