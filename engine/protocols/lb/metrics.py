"""Metrics as time series, made by an observer from the records (never by the nodes).

`LbMetrics` folds `request` and `state` records and, every `metrics.interval_ms` of simulated
time, writes a `metric` record (docs/trace-format.md): throughput, arrivals, drops (rejected +
timed out), retries, end-to-end latency percentiles p50/p95/p99/p99.9 and a histogram over the
last `metrics.window_ms`, and per backend its in-flight, queue, utilisation (time-averaged
in-flight / concurrency over the interval), served, rejected and timed out (a failure counts
against the backend it was last assigned to). It lives with the checkers (so it is snapshotted and
rewound with the world, and `playground check` re-derives it from a trace); its records collect
in `out`, and `take()` hands over the new ones.

Its state is bounded however long the run: `out` keeps the latest `HISTORY` records (what the
page charts: a sliding window of 240 intervals, a minute at the lab's 250 ms), forgetting older
ones only once every reader has had them (engine/checkers/base.py: a trace gets every record);
the latencies are those of the last window; a request is remembered only while unfinished.

Its cost per record does not grow with the window: the window's latencies are kept sorted and
binned as they come and go (an insertion and a removal per request), so a record reads its
percentiles and histogram off them instead of sorting and binning the whole window each time.
"""

from __future__ import annotations

import bisect
from collections import deque

from ...checkers.base import Checker
from ...stats import percentile

QUANTILES = (("p50", 50), ("p95", 95), ("p99", 99), ("p99.9", 99.9))
HISTOGRAM_EDGES_MS = (1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000, 10_000)
HISTORY = 240  # metric records kept in the world's state (the page's sliding window)


class LbMetrics(Checker):
    name = "metrics"
    explains = ""
    record_types = ("request", "state")
    writes = ("metric",)  # written to traces and frames (engine/checkers/base.py)
    shown = False  # a measurement, not an invariant: the page charts it instead of listing it

    def __init__(self, seed, servers, backends, config):
        super().__init__(seed, servers)
        self.backends = backends
        self.interval_ms = config.metrics.interval_ms
        self.window_ms = config.metrics.window_ms
        self.concurrency = {b: config.spec_of(i).concurrency for i, b in enumerate(backends)}
        self.next_ms = self.interval_ms
        self.last_ms = 0.0
        self.in_flight = {b: 0 for b in backends}
        self.queue = {b: 0 for b in backends}
        self.busy = {b: 0.0 for b in backends}  # integral of in-flight over the interval (ms)
        self.since = {b: 0.0 for b in backends}
        self.assigned: dict[tuple[str, int], str] = {}
        self.latencies: deque[tuple[float, float]] = deque()
        self.ranked: list[float] = []  # the window's latencies, ascending
        self.binned = [0] * (len(HISTOGRAM_EDGES_MS) + 1)  # and their histogram
        self._zero()
        self.out: list[dict] = []
        self.written = 0
        self.taken = 0

    def _zero(self) -> None:
        self.n = {"arrived": 0, "done": 0, "rejected": 0, "timed_out": 0, "retries": 0}
        self.per = {b: {"served": 0, "rejected": 0, "timed_out": 0} for b in self.backends}

    def catch_up(self, t_ms: float) -> None:
        """Write the records due by `t_ms`. Each describes the moment it is due, whenever it is
        written: records before it were folded in, and none after it yet. The oldest records
        beyond `HISTORY` are forgotten first (every reader has had them by now)."""
        if t_ms < self.next_ms:
            return
        out = self.out
        if len(out) > HISTORY:
            del out[: len(out) - HISTORY]
        while t_ms >= self.next_ms:
            self._emit(self.next_ms)
            self.next_ms += self.interval_ms

    def observe(self, rec):
        t = rec["t"]
        if t >= self.next_ms:
            self.catch_up(t)
        if rec["type"] == "state":
            b = rec["node"]
            if b in self.in_flight:
                self._integrate(b, t)
                self.in_flight[b], self.queue[b] = rec["in_flight"], rec["queue"]
            return
        ev = rec["event"]
        key = (rec["client"], rec["id"])
        if ev == "assign":
            self.assigned[key] = rec["backend"]
        elif ev == "arrive":
            self.n["arrived"] += 1
        elif ev == "retry":
            self.n["retries"] += 1
            self._count(rec["backend"], "rejected" if rec["why"] == "reject" else "timed_out")
        elif ev == "done":
            self.n["done"] += 1
            x = rec["latency_ms"]
            self.latencies.append((t, x))
            bisect.insort(self.ranked, x)
            self.binned[bisect.bisect_right(HISTOGRAM_EDGES_MS, x)] += 1
            self._count(rec.get("backend") or self.assigned.get(key), "served")
            self.assigned.pop(key, None)
        elif ev in ("reject", "timeout"):
            what = "rejected" if ev == "reject" else "timed_out"
            self.n[what] += 1
            self._count(rec.get("backend") or self.assigned.get(key), what)
            self.assigned.pop(key, None)

    def _count(self, b, what) -> None:
        if b in self.per:
            self.per[b][what] += 1

    def _integrate(self, b, t) -> None:
        self.busy[b] += self.in_flight[b] * (t - self.since[b])
        self.since[b] = t

    def _emit(self, t: float) -> None:
        span = t - self.last_ms
        lat, xs, binned = self.latencies, self.ranked, self.binned
        while lat and lat[0][0] < t - self.window_ms:
            x = lat.popleft()[1]
            del xs[bisect.bisect_left(xs, x)]
            binned[bisect.bisect_right(HISTOGRAM_EDGES_MS, x)] -= 1
        backends = {}
        for b in self.backends:
            self._integrate(b, t)
            util = self.busy[b] / (span * self.concurrency[b]) if span > 0 else 0.0
            backends[b] = {"in_flight": self.in_flight[b], "queue": self.queue[b],
                           "utilisation": round(util, 4), **self.per[b]}
            self.busy[b] = 0.0
        per_s = 1000 / span if span > 0 else 0.0
        n = self.n
        self.out.append({
            "type": "metric", "t": t, "interval_ms": span,
            "throughput_per_s": round(n["done"] * per_s, 3),
            "arrivals_per_s": round(n["arrived"] * per_s, 3),
            "drops": n["rejected"] + n["timed_out"], "rejected": n["rejected"],
            "timed_out": n["timed_out"], "retries": n["retries"],
            "latency_ms": {name: (None if not xs else round(percentile(xs, q), 3))
                           for name, q in QUANTILES},
            "samples": len(xs),
            "histogram": {"edges_ms": list(HISTOGRAM_EDGES_MS), "counts": list(binned)},
            "backends": backends,
        })
        self.written += 1
        self.last_ms = t
        self._zero()

    def emit_now(self, t: float) -> dict:
        """The metric record for the time since the last one, written now (a run's end)."""
        self._emit(t)
        return self.out[-1]

    def take(self) -> list[dict]:
        """The metric records written since the last call (at most the `HISTORY` latest)."""
        new = self.written_since(self.taken)
        self.taken = self.written
        return new


def metrics_of(world) -> LbMetrics | None:
    """The metrics observer of a load-balancing world (a `Simulation`), if it has one."""
    return next((c for c in world.checkers if isinstance(c, LbMetrics)), None)
