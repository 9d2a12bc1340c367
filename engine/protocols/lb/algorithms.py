"""The balancing algorithms, one small class each.

An algorithm chooses among the balancer's usable backends (`lb.usable`, in topology order; it
changes only when health or ejection does, and is then a new tuple). It reads the balancer's view
of load (`lb.loads()`: in-flight tries per backend, fresh or a stale snapshot), the weights
(`lb.weight`), and draws only from the balancer's RNG stream (`lb.rng`).

`pick(lb, key)` returns `(backend, told)`: `told` is None or extra fields for the `assign`
record (what the checkers need to judge the pick: `seen` loads, sampled `choices`); an algorithm
may skip building them while `lb.recording` is false (nobody reads the record then), never
changing its pick or its draws by it.
`pick_retry(lb, key, tried)` picks for a retry, among the usable backends not yet tried; the
sequence algorithms (round robin, smooth WRR) leave their sequence alone for it, so first tries
keep the exact sequence the checkers verify. `observe(b, latency_ms, now_us)` is told each
completed try's latency (peak-EWMA uses it).
"""

from __future__ import annotations

import abc
import bisect
import math
from typing import Any, ClassVar

from ..._mypyc import mypyc_attr
from .hashing import Ring, hash64, maglev_table


@mypyc_attr(allow_interpreted_subclasses=True, serializable=True)
class Algorithm(abc.ABC):
    # Class-level facts (ClassVar: compiled with mypyc, they stay readable on the class too).
    name: ClassVar[str] = "?"
    wants_latency: ClassVar[bool] = False
    hashes: ClassVar[bool] = False  # picks by the request's key (a request without one hashes its id)

    def __init__(self, backends: list[str], config, mutations: tuple[str, ...] = ()):
        self.backends = backends
        self.config = config
        self.mutations = mutations

    @abc.abstractmethod
    def pick(self, lb: Any, key: Any) -> tuple[Any, Any]:
        """The backend for a request with `key` (None when none can take it). Every algorithm
        defines it."""

    def pick_retry(self, lb, key, tried):
        left = [b for b in lb.usable if b not in tried]
        if not left:
            return None, None
        return self._among(lb, key, left)

    def _among(self, lb, key, cands):
        """A retry's pick among `cands` (default: the least loaded, ties at random)."""
        return _least(lb, cands, lb.loads(), None)[0], None

    def observe(self, b: str, latency_ms: float, now_us: int) -> None:
        pass


def _least(lb: Any, cands: Any, loads: dict[str, int], weight: Any) -> tuple[str, Any]:
    """The candidate with the fewest in-flight tries (per unit of weight), ties at random (one
    draw, among the tied in candidate order; none when one is least)."""
    if weight is None:  # (the common case, on every pick: one pass, no list, integer compares)
        least: int = loads[cands[0]]
        i, n = 0, 1
        for k in range(1, len(cands)):
            v: int = loads[cands[k]]
            if v < least:
                least, i, n = v, k, 1
            elif v == least:
                n += 1
        if n > 1:  # the j-th of the tied, in candidate order
            j = int(lb.rng.random() * n)
            while j:
                i += 1
                if loads[cands[i]] == least:
                    j -= 1
        return cands[i], least
    vals = [loads[b] / weight[b] for b in cands]
    best = min(vals)
    n = vals.count(best)
    i = vals.index(best)
    if n > 1:  # the j-th of the tied, in candidate order
        for _ in range(int(lb.rng.random() * n)):
            i = vals.index(best, i + 1)
    return cands[i], best


def _uniform(lb, cands):
    """A candidate uniformly at random (one draw): the sequence and random algorithms' retry."""
    return cands[int(lb.rng.random() * len(cands))]


def sample_d(rng, u, d: int) -> list:
    """d distinct backends of `u` at random (all of them when d >= len(u)); d = 2 without
    building a population, since it runs on every pick."""
    n = len(u)
    if d >= n:
        return list(u)
    if d == 2:
        i = int(rng.random() * n)
        j = int(rng.random() * (n - 1))
        return [u[i], u[j + 1 if j >= i else j]]
    return rng.sample(list(u), d)


@mypyc_attr(allow_interpreted_subclasses=True, serializable=True)
class RoundRobin(Algorithm):
    """Each backend in turn (the classic; nginx's default): counts even to within one, blind to
    load and speed, so a slow backend gets as much as a fast one."""

    name = "round_robin"

    def __init__(self, backends, config, mutations=()):
        super().__init__(backends, config, mutations)
        self.next = 0
        self.sticky = "sticky_rr" in self.mutations

    def pick(self, lb: Any, key: Any) -> tuple[Any, Any]:
        order, usable = self.backends, lb.usable_set
        n = len(order)
        i = self.next
        for step in range(n):
            b = order[(i + step) % n]
            if b in usable:
                # sticky_rr: a cursor that met an unusable backend stays put, so it lands on the
                # same unusable one next time and falls through to the same successor again.
                self.next = i if (self.sticky and step) else (i + step + 1) % n
                return b, None
        return None, None

    def _among(self, lb, key, cands):
        return _uniform(lb, cands), None


@mypyc_attr(allow_interpreted_subclasses=True, serializable=True)
class SmoothWeightedRoundRobin(Algorithm):
    """nginx's smooth weighted round robin (ngx_http_upstream_get_peer, 2012): each pick adds
    every weight to its backend's current weight, takes the largest (first in order on a tie) and
    subtracts the total from it; weights 5:1:1 give `a a b a c a a`, spread out, not `a a a a a b
    c`. Exact per sum-of-weights picks, blind to load. (nginx keeps the current weights when a peer
    goes down; here they restart from zero when the usable set changes, so every window after a
    change is exact too.)"""

    name = "weighted_round_robin"

    def __init__(self, backends, config, mutations=()):
        super().__init__(backends, config, mutations)
        self.current: dict[str, int] = {}
        self._for = None

    def pick(self, lb: Any, key: Any) -> tuple[Any, Any]:
        usable = lb.usable
        if usable is not self._for:
            self._for = usable
            self.current = {b: 0 for b in usable}
        if not usable:
            return None, None
        cur, w = self.current, lb.weight
        total = 0
        best: Any = None
        for b in usable:
            cur[b] += w[b]
            total += w[b]
            if best is None or cur[b] > cur[best]:
                best = b
        cur[best] -= total
        return best, None

    def _among(self, lb, key, cands):
        return _uniform(lb, cands), None


@mypyc_attr(allow_interpreted_subclasses=True, serializable=True)
class Random(Algorithm):
    """A uniformly random backend: no state, no coordination between balancers, but the busiest
    backend's load grows like ln n / ln ln n (Mitzenmacher) and load is ignored."""

    name = "random"

    def pick(self, lb: Any, key: Any) -> tuple[Any, Any]:
        u = lb.usable
        if not u:
            return None, None
        return u[int(lb.rng.random() * len(u))], None

    def _among(self, lb, key, cands):
        return _uniform(lb, cands), None


@mypyc_attr(allow_interpreted_subclasses=True, serializable=True)
class WeightedRandom(Algorithm):
    """A random backend with probability proportional to its weight: right on average for a
    fleet of known capacities, with random's variance."""

    name = "weighted_random"

    def __init__(self, backends, config, mutations=()):
        super().__init__(backends, config, mutations)
        self._for = None
        self.cum: list[int] = []

    def pick(self, lb: Any, key: Any) -> tuple[Any, Any]:
        u = lb.usable
        if not u:
            return None, None
        if u is not self._for:
            self._for, self.cum, total = u, [], 0
            for b in u:
                total += lb.weight[b]
                self.cum.append(total)
        i = bisect.bisect_right(self.cum, lb.rng.random() * self.cum[-1])
        return u[min(i, len(u) - 1)], None

    def _among(self, lb, key, cands):
        return _uniform(lb, cands), None


@mypyc_attr(allow_interpreted_subclasses=True, serializable=True)
class LeastConnections(Algorithm):
    """The backend with the fewest in-flight requests as this balancer sees them, ties broken at
    random (nginx `least_conn`, HAProxy `leastconn`): adapts to slow backends, but scans every
    backend and, with several balancers or stale counts, they all herd to the same one."""

    name = "least_connections"
    weighted: ClassVar[bool] = False

    def pick(self, lb: Any, key: Any) -> tuple[Any, Any]:
        u = lb.usable
        if not u:
            return None, None
        loads = lb.loads()
        b, _ = _least(lb, u, loads, lb.weight if self.weighted else None)
        if not lb.recording:
            return b, None  # (nobody reads the assign record now)
        return b, {"seen": dict(loads)}  # every backend's count (the checker keeps the healthy)


@mypyc_attr(allow_interpreted_subclasses=True, serializable=True)
class WeightedLeastConnections(LeastConnections):
    """Fewest in-flight requests per unit of weight (nginx `least_conn` with weights): least
    connections for a fleet of known, unequal capacities."""

    name = "weighted_least_connections"
    weighted = True


@mypyc_attr(allow_interpreted_subclasses=True, serializable=True)
class PowerOfD(Algorithm):
    """Sample d backends at random and take the least loaded (Mitzenmacher, "The Power of Two
    Choices in Randomized Load Balancing", 2001; Envoy's least request uses d = 2): the maximum
    load falls from ln n / ln ln n to ln ln n / ln d, at O(d) per pick; with stale loads the
    advantage shrinks (Mitzenmacher, "How useful is old information?", 2000)."""

    name = "power_of_d"

    def __init__(self, backends, config, mutations=()):
        super().__init__(backends, config, mutations)
        self.d = self.config.choices
        self.scan_all = "p2c_scan_all" in self.mutations

    def pick(self, lb: Any, key: Any) -> tuple[Any, Any]:
        u = lb.usable
        n = len(u)
        if not n:
            return None, None
        loads = lb.loads()
        rnd = lb.rng.random
        if self.scan_all:
            # The bug: scan everything (the point of sampling lost), then a coin decides between
            # the least loaded and a random backend.
            least = min(u, key=loads.__getitem__)
            other = u[int(rnd() * n)]
            b = least if rnd() < 0.5 else other
            return b, {"choices": [[least, loads[least]], [other, loads[other]]]}
        sample = sample_d(lb.rng, u, self.d)
        best = sample[0]
        for c in sample[1:]:
            if loads[c] < loads[best]:
                best = c
        return best, {"choices": [[c, loads[c]] for c in sample]}


@mypyc_attr(allow_interpreted_subclasses=True, serializable=True)
class ConsistentHash(Algorithm):
    """A ring with virtual nodes (Karger et al. 1997; Envoy `ring_hash`): a key sticks to one
    backend and only 1/N of keys move when one leaves, but a hot key overloads its backend. With
    `bounded_load` c, Mirrokni, Thorup and Zadimoghaddam's "Consistent Hashing with Bounded
    Loads" (SODA 2018): skip clockwise past any backend with ceil(c x (in-flight + 1) / n) tries."""

    name = "consistent_hash"
    hashes = True

    def __init__(self, backends, config, mutations=()):
        super().__init__(backends, config, mutations)
        self._for = None
        self.ring: Ring | None = None
        self._hashes: dict[str, int] = {}
        self.c = self.config.bounded_load

    def _hash(self, key):
        h = self._hashes.get(key)
        if h is None:
            if len(self._hashes) > 100_000:
                self._hashes.clear()
            h = self._hashes[key] = hash64(key)
        return h

    def _ring(self, lb):
        if lb.usable is not self._for:
            self._for = lb.usable
            self.ring = Ring(lb.usable, self.config.vnodes) if lb.usable else None
        return self.ring

    def pick(self, lb: Any, key: Any) -> tuple[Any, Any]:
        ring = self._ring(lb)
        if ring is None:
            return None, None
        h = self._hash(key)
        if self.c is None:
            return ring.owner(h), None
        loads = lb.loads()
        total = sum(loads[b] for b in lb.usable)
        cap = math.ceil(self.c * (total + 1) / len(lb.usable))
        for b in ring.walk(h):
            if loads[b] < cap:
                return b, {"cap": cap}
        return ring.owner(h), {"cap": cap}  # (cannot happen: some backend is below the mean)

    def pick_retry(self, lb, key, tried):
        ring = self._ring(lb)
        if ring is None:
            return None, None
        for b in ring.walk(self._hash(key)):
            if b not in tried:
                return b, None
        return None, None


@mypyc_attr(allow_interpreted_subclasses=True, serializable=True)
class Maglev(Algorithm):
    """Maglev hashing (Eisenbud et al., NSDI 2016; Envoy `maglev`, table 65537): a lookup table
    of prime size filled by per-backend permutations: O(1) lookups, near-perfect balance (slot
    counts within one), and little disruption when a backend leaves; rebuilt on every change."""

    name = "maglev"
    hashes = True

    def __init__(self, backends, config, mutations=()):
        super().__init__(backends, config, mutations)
        self._for = None
        self.table: list[int] = []
        self._cache: dict[tuple, list[int]] = {}
        self._hashes: dict[str, int] = {}

    def _table(self, lb):
        u = lb.usable
        if u is not self._for:
            self._for = u
            t = self._cache.get(u)
            if t is None:
                if len(self._cache) >= 8:
                    self._cache.clear()
                t = self._cache[u] = maglev_table(u, self.config.maglev_table_size)
            self.table = t
        return self.table

    def _slot(self, key):
        h = self._hashes.get(key)
        if h is None:
            if len(self._hashes) > 100_000:
                self._hashes.clear()
            h = self._hashes[key] = hash64(key) % self.config.maglev_table_size
        return h

    def pick(self, lb: Any, key: Any) -> tuple[Any, Any]:
        t = self._table(lb)
        if not t:
            return None, None
        return lb.usable[t[self._slot(key)]], None

    def pick_retry(self, lb, key, tried):
        t = self._table(lb)
        if not t:
            return None, None
        s, m = self._slot(key), len(t)
        for k in range(1, m):
            b = lb.usable[t[(s + k) % m]]
            if b not in tried:
                return b, None
        return None, None


PENALTY = float(1 << 47)  # Finagle's Long.MaxValue >> 16: a backend with load but no latency yet


@mypyc_attr(allow_interpreted_subclasses=True, serializable=True)
class PeakEwma(Algorithm):
    """Finagle's peak-EWMA least-loaded (Balancers.p2cPeakEwma): cost = (in-flight + 1) x a
    latency average that jumps to any higher sample and decays with time constant
    `ewma_decay_ms`, compared over `choices` random backends: shuns a slow backend before its
    queue shows it, at the price of state per backend."""

    name = "peak_ewma"
    wants_latency = True

    def __init__(self, backends, config, mutations=()):
        super().__init__(backends, config, mutations)
        self.cost = {b: 0.0 for b in self.backends}
        self.stamp = {b: 0 for b in self.backends}
        self.tau_us = self.config.ewma_decay_ms * 1000
        self.d = self.config.choices

    def _decayed(self, b, now_us, sample):
        """Finagle's PeakEwma.observe: a higher sample replaces the average outright."""
        td = max(now_us - self.stamp[b], 0)
        w = math.exp(-td / self.tau_us)
        c = self.cost[b]
        c = sample if sample > c else c * w + sample * (1 - w)
        self.cost[b] = c
        self.stamp[b] = now_us
        return c

    def observe(self, b: str, latency_ms: float, now_us: int) -> None:
        self._decayed(b, now_us, latency_ms)

    def score(self, b, loads, now_us):
        c = self._decayed(b, now_us, 0.0)  # Finagle's get(): observe(0) decays it to now
        pending = loads[b]
        if c == 0.0 and pending:
            return PENALTY + pending
        return c * (pending + 1)

    def pick(self, lb: Any, key: Any) -> tuple[Any, Any]:
        if not lb.usable:
            return None, None
        return self._among(lb, key, lb.usable)

    def _among(self, lb, key, u):
        loads, now = lb.loads(), lb.now_us
        sample = sample_d(lb.rng, u, self.d)
        scored = [(self.score(c, loads, now), c) for c in sample]
        best = min(scored, key=lambda x: x[0])[1]
        return best, {"choices": [[c, round(s, 3)] for s, c in scored]}


ALGORITHM_CLASSES = {cls.name: cls for cls in (
    RoundRobin, SmoothWeightedRoundRobin, Random, WeightedRandom, LeastConnections,
    WeightedLeastConnections, PowerOfD, ConsistentHash, Maglev, PeakEwma)}


def make_algorithm(config, backends: list[str]) -> Algorithm:
    return ALGORITHM_CLASSES[config.algorithm](backends, config, config.mutations)
