"""The load balancer's invariants, one checker each. They read `request` and `state` records
(docs/trace-format.md) and never change anything; each algorithm's checker judges only the
balancers whose `state` names that algorithm, and only first tries (a retry is picked apart
from the algorithm's sequence, by design: see algorithms.py).
"""

from __future__ import annotations

import abc
from collections import deque

from ...checkers.base import Checker


class Conservation(Checker):
    """Every request that arrived is, at every moment, exactly one of done, rejected, timed out
    or in flight: each ends once, never before it arrived, and none outlives its deadline."""

    name = "Conservation"
    explains = ("Arrived = done + rejected + timed out + in flight at every moment: each request "
                "ends exactly once, and none is still in flight after its timeout.")
    record_types = ("request",)
    ENDS = {"done": "done", "reject": "rejected", "timeout": "timed_out"}

    def __init__(self, seed, servers):
        super().__init__(seed, servers)
        self.counts = {"arrived": 0, "done": 0, "rejected": 0, "timed_out": 0}
        self.open: dict[tuple[str, int], float] = {}  # request -> deadline (ms)
        self.order: deque[tuple[str, int]] = deque()

    @property
    def in_flight(self) -> int:
        return len(self.open)

    def observe(self, rec):
        ev = rec["event"]
        t = rec["t"]
        if ev == "arrive":
            key = (rec["client"], rec["id"])
            if key in self.open:
                self.report(t, [rec["client"]], f"{key[0]}#{key[1]} arrived twice")
            self.counts["arrived"] += 1
            self.open[key] = t + rec.get("timeout_ms", float("inf"))
            self.order.append(key)
        elif ev in self.ENDS:
            key = (rec["client"], rec["id"])
            if self.open.pop(key, None) is None:
                self.report(t, [rec["client"]], f"{key[0]}#{key[1]} ended ({ev}) but was not in "
                            f"flight (never arrived, or already ended)")
                return
            self.counts[self.ENDS[ev]] += 1
        self._lost(t)

    def _lost(self, t: float) -> None:
        order, open_ = self.order, self.open
        while order:
            key = order[0]
            deadline = open_.get(key)
            if deadline is None:
                order.popleft()
                continue
            if t > deadline + 1e-3:
                order.popleft()
                del open_[key]
                self.report(t, [key[0]], f"{key[0]}#{key[1]} still in flight "
                            f"{t - deadline:.3f} ms after its deadline")
                continue
            return


class _PerBalancer(Checker, abc.ABC):
    """Folds balancers' `state` records: their algorithm and the backends they believe healthy."""

    record_types = ("request", "state")
    algorithms: tuple[str, ...] = ()

    def __init__(self, seed, servers, backends, config):
        super().__init__(seed, servers)
        self.backends = backends
        self.config = config
        # As each balancer boots: the config's algorithm, every backend healthy (a trace starts
        # after the boot's own state records, so they cannot be relied on).
        lbs = [n for n in servers if n not in set(backends)]
        self.algorithm: dict[str, str] = {lb: config.algorithm for lb in lbs}
        self.healthy: dict[str, frozenset] = {lb: frozenset(backends) for lb in lbs}

    def observe(self, rec):
        if rec["type"] == "state":
            if rec.get("algorithm") is not None:
                lb = rec["node"]
                self.algorithm[lb] = rec["algorithm"]
                self.healthy[lb] = frozenset(rec["healthy"])
                self.reset(lb)
        elif rec["event"] == "assign":
            lb = rec["lb"]
            if self.algorithms and self.algorithm.get(lb) not in self.algorithms:
                return
            self.assigned(rec, lb, self.healthy.get(lb, frozenset(self.backends)))

    def reset(self, lb: str) -> None:
        pass

    @abc.abstractmethod
    def assigned(self, rec, lb, healthy) -> None:
        """Judge one first-try assignment by balancer `lb` against its `healthy` set."""


class AssignsOnlyToHealthy(_PerBalancer):
    name = "Healthy assignments"
    explains = "No request is assigned to a backend its balancer believes down or has ejected."

    def assigned(self, rec, lb, healthy):
        b = rec["backend"]
        if b not in healthy:
            self.report(rec["t"], [lb, b], f"{lb} assigned {rec['client']}#{rec['id']} to {b}, "
                        f"which it believes down or ejected")


class RoundRobinEven(_PerBalancer):
    name = "Round robin evenness"
    explains = ("Round robin over a fixed healthy set gives every backend the same number of "
                "requests, to within one.")
    algorithms = ("round_robin",)

    def __init__(self, *a):
        super().__init__(*a)
        self.counts: dict[str, dict[str, int]] = {}
        for lb in self.healthy:
            self.reset(lb)

    def reset(self, lb):
        self.counts[lb] = {b: 0 for b in self.healthy[lb]}

    def assigned(self, rec, lb, healthy):
        if rec["attempt"] != 1:
            return
        c = self.counts.setdefault(lb, {b: 0 for b in healthy})
        if rec["backend"] not in c:
            return  # not in the healthy set: the healthy-assignments checker's business
        c[rec["backend"]] += 1
        hi, lo = max(c.values()), min(c.values())
        if hi - lo > 1:
            most = max(sorted(c), key=c.__getitem__)
            least = min(sorted(c), key=c.__getitem__)
            self.report(rec["t"], [lb, most, least], f"{lb}: {most} has {hi} requests and {least} "
                        f"{lo} since the healthy set last changed")


class SmoothWrrSequence(_PerBalancer):
    """A reference nginx smooth WRR per balancer, restarted when the healthy set changes; every
    first try must be its next pick. (The reference is written again here on purpose, not shared
    with algorithms.py: a checker that called the code it judges would agree with any bug.)"""

    name = "Smooth WRR sequence"
    explains = ("Smooth weighted round robin picks exactly nginx's sequence (weights 5:1:1 give "
                "a a b a c a a in every 7).")
    algorithms = ("weighted_round_robin",)

    def __init__(self, *a):
        super().__init__(*a)
        self.weight = {b: self.config.spec_of(i).weight for i, b in enumerate(self.backends)}
        self.current: dict[str, dict[str, int]] = {}
        for lb in self.healthy:
            self.reset(lb)

    def reset(self, lb):
        self.current[lb] = {b: 0 for b in self.backends if b in self.healthy[lb]}

    def assigned(self, rec, lb, healthy):
        if rec["attempt"] != 1:
            return
        cur = self.current.get(lb)
        if cur is None:
            cur = self.current[lb] = {b: 0 for b in self.backends if b in healthy}
        if not cur:
            return
        expected = swrr_next(cur, self.weight)
        if rec["backend"] != expected:
            self.report(rec["t"], [lb, rec["backend"]], f"{lb} picked {rec['backend']} where "
                        f"smooth WRR picks {expected}")
            self.current[lb] = {b: 0 for b in cur}  # one report per divergence, then start over


def swrr_next(current: dict[str, int], weight: dict[str, int]) -> str:
    """nginx's smooth WRR step on `current` (changed in place), in the dict's order."""
    total, best = 0, None
    for b in current:
        current[b] += weight[b]
        total += weight[b]
        if best is None or current[b] > current[best]:
            best = b
    current[best] -= total
    return best


class LeastConnectionsPick(_PerBalancer):
    name = "Least connections"
    explains = ("Least connections never picks a backend with strictly more in-flight requests "
                "(per weight) than another healthy one, as its balancer sees them.")
    algorithms = ("least_connections", "weighted_least_connections")

    def __init__(self, *a):
        super().__init__(*a)
        self.weight = {b: self.config.spec_of(i).weight for i, b in enumerate(self.backends)}

    def assigned(self, rec, lb, healthy):
        if rec["attempt"] != 1:
            return
        seen, b = rec["seen"], rec["backend"]
        w = self.weight if self.algorithm.get(lb) == "weighted_least_connections" else None

        def per(x):
            return seen[x] / w[x] if w else seen[x]

        if w is None and b in seen and min(seen.values()) == seen[b]:
            return  # least of all, so of the healthy too (the common case: no sort, no scan)
        better = [c for c in sorted(seen) if c in healthy and per(c) < per(b)]
        if better:
            self.report(rec["t"], [lb, b, better[0]], f"{lb} picked {b} ({seen[b]} in flight) "
                        f"over {better[0]} ({seen[better[0]]})")


class PowerOfDPick(_PerBalancer):
    name = "Power of d choices"
    explains = "Power of d choices assigns to the least loaded of the backends it sampled."
    algorithms = ("power_of_d",)

    def assigned(self, rec, lb, healthy):
        if rec["attempt"] != 1:
            return
        loads = dict(rec["choices"])
        b = rec["backend"]
        if b not in loads:
            self.report(rec["t"], [lb, b], f"{lb} picked {b}, which it did not sample")
        elif loads[b] > min(loads.values()):
            other = min(sorted(loads), key=loads.__getitem__)
            self.report(rec["t"], [lb, b, other], f"{lb} picked {b} ({loads[b]} in flight) over "
                        f"its other choice {other} ({loads[other]})")


LB_CHECKERS = (Conservation, AssignsOnlyToHealthy, RoundRobinEven, SmoothWrrSequence,
               LeastConnectionsPick, PowerOfDPick)
LB_INVARIANTS = tuple((c.name, c.explains) for c in LB_CHECKERS)


def make_lb_checkers(seed, topology, config) -> list:
    servers = topology.ids
    backends = topology.of_kind("backend")
    out: list = [Conservation(seed, servers)]
    out += [cls(seed, servers, backends, config) for cls in LB_CHECKERS[1:]]
    return out
