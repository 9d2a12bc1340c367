"""The load balancer's measures for sweeps (engine/measures.py): the latency tail, the busiest
backend's load and the requests lost, each over the whole run.

They read the run through an `LbMetrics` of their own (metrics.py, the observer behind the `metric`
records) whose one interval and one window are the whole run: the figures are what a single
`metric` record covering the run would say, computed by the same code.
"""

from __future__ import annotations

import math

from ...measures import Measure
from .metrics import LbMetrics


class _WholeRun(Measure):
    """An LbMetrics over the whole run: no interval ends and no sample leaves the window until
    the run's end, where `totals()` writes its one record."""

    def __init__(self, topology, config, scenario):
        super().__init__(topology, config, scenario)
        m = self.metrics = LbMetrics(scenario.seed, topology.ids, topology.of_kind("backend"), config)
        m.next_ms = math.inf
        m.window_ms = math.inf
        self.end_ms = scenario.duration_ms
        self._totals: dict | None = None

    def __call__(self, rec: dict) -> None:
        if rec["type"] in LbMetrics.record_types:
            self.metrics.observe(rec)

    def totals(self) -> dict:
        if self._totals is None:
            self._totals = self.metrics.emit_now(self.end_ms)
        return self._totals


class LatencyP99(_WholeRun):
    """The 99th percentile of end-to-end latency over every request served in the run (`done`;
    rejected and timed-out requests have no latency here), numpy's linear percentile. None when
    nothing was served."""

    name = "latency_p99_ms"
    unit = "ms"
    doc = "p99 end-to-end latency of the requests served, over the whole run"

    def value(self) -> float | None:
        return self.totals()["latency_ms"]["p99"]


class Drops(_WholeRun):
    """Requests lost in the run: rejected (no backend would take them) plus timed out, as the
    `metric` records' `drops` count them."""

    name = "drops"
    unit = "requests"
    doc = "requests rejected or timed out over the whole run"

    def value(self) -> float | None:
        return self.totals()["drops"]


class MaxBackendLoad(_WholeRun):
    """The busiest moment of the busiest backend: the most requests any one backend held at once
    (in service + queued, as its `state` records report them). The balls-into-bins "maximum
    load" (Mitzenmacher, "The Power of Two Choices in Randomized Load Balancing", 2001) of a
    running system. None when no backend ever held a request."""

    name = "max_backend_load"
    unit = "requests"
    doc = "most requests (in service + queued) one backend held at once"

    def __init__(self, topology, config, scenario):
        super().__init__(topology, config, scenario)
        self.peak = 0

    def __call__(self, rec: dict) -> None:
        super().__call__(rec)
        if rec["type"] == "state":
            b, m = rec["node"], self.metrics
            if b in m.in_flight:
                self.peak = max(self.peak, m.in_flight[b] + m.queue[b])

    def value(self) -> float | None:
        return self.peak or None


LB_MEASURES = {m.name: m for m in (LatencyP99, MaxBackendLoad, Drops)}
