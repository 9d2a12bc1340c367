"""The load-balancing lessons (scenarios/lb_*.json): each runs clean, and shows what its notes
claim, read from the metrics observer's records (the numbers the page charts) of the lesson's
own seed. Each run stops as soon as its claim can be judged (a few seconds of CPU in all)."""

from __future__ import annotations

from pathlib import Path

import pytest

from engine.protocols.lb.metrics import metrics_of
from engine.scenario import parse_scenario
from engine.sim import Simulation

SCENARIOS = Path(__file__).resolve().parents[2] / "scenarios"


class Run:
    def __init__(self, name: str, until_ms: float | None = None, **changes):
        sc = parse_scenario((SCENARIOS / f"{name}.json").read_bytes())
        if changes:
            sc = sc.with_(**changes)
        self.sim = Simulation(sc)
        self.recs: list[dict] = []
        self.sim.subscribe(lambda r: self.recs.append(r) if r["type"] in ("request", "state") else None,
                           messages=False)
        # (A metric record is written at the first record after its moment: run a little past.)
        self.sim.run_until(min(sc.duration_ms, (until_ms if until_ms is not None else sc.duration_ms) + 5))
        self.metrics = {r["t"]: r for r in metrics_of(self.sim).out}
        bad = [v for c in self.sim.checkers for v in c.violations]
        assert not bad, bad

    def p99(self, t):
        return self.metrics[t]["latency_ms"]["p99"]

    def drops(self, t0, t1):
        return sum(r["drops"] for t, r in self.metrics.items() if t0 < t <= t1)

    def arrivals(self, t0, t1):
        return sum(1 for r in self.recs if r["type"] == "request" and r["event"] == "arrive" and t0 <= r["t"] < t1)

    def count(self, event, t0=0.0, t1=float("inf"), **match):
        return sum(1 for r in self.recs if r["type"] == "request" and r["event"] == event and t0 <= r["t"] < t1
                   and all(r.get(k) == v for k, v in match.items()))

    def load(self, t0, t1):
        """Mean over the intervals of the busiest backend's in-flight + queued requests."""
        xs = [max(b["in_flight"] + b["queue"] for b in r["backends"].values())
              for t, r in self.metrics.items() if t0 < t <= t1]
        return sum(xs) / len(xs)


def test_every_lb_lesson_loads_and_names_its_protocol():
    names = sorted(p.stem for p in SCENARIOS.glob("lb_*.json"))
    assert len(names) == 10
    for n in names:
        sc = parse_scenario((SCENARIOS / f"{n}.json").read_bytes())
        assert sc.protocol == "lb" and sc.title and sc.notes and sc.suggest


def test_uniform_fleet_every_algorithm_looks_fine():
    run = Run("lb_uniform_fleet", until_ms=31_995)
    worst = {alg: max(run.p99(t) for t in run.metrics if lo + 2000 < t <= lo + 8000)
             for alg, lo in (("round_robin", 0), ("random", 8000), ("least_connections", 16000),
                             ("power_of_d", 24000))}
    assert max(worst.values()) < 2 * min(worst.values()) and max(worst.values()) < 250, worst
    assert run.drops(0, 32_000) == 0


def test_heterogeneous_fleet_round_robin_melts_down_least_connections_does_not():
    run = Run("lb_heterogeneous_rr", until_ms=16_000)
    assert run.p99(10_000) > 2 * run.p99(15_000)  # RR's last window against LC's
    assert run.load(5000, 10_000) > 3 * run.load(12_000, 16_000)


def test_a_slow_backend_passes_its_health_checks_and_peak_ewma_avoids_it():
    run = Run("lb_slow_backend_ewma", until_ms=16_000)
    lb = [r for r in run.recs if r["type"] == "state" and r["node"] == "lb1"]
    assert all("b3" in r["healthy"] for r in lb)  # alive as far as the health checks know
    assert run.p99(9000) > 3 * run.p99(1000)  # round robin, b3 at x0.25
    assert run.p99(9000) > 3 * run.p99(16_000)  # peak-EWMA since 10 s
    share = run.count("assign", 13_000, 16_000, backend="b3") / run.count("assign", 13_000, 16_000)
    assert share < 0.08  # round robin gave it 0.2


def test_a_crash_without_health_checks_keeps_failing_and_with_them_stops():
    blind = Run("lb_crash_no_health", until_ms=10_000)
    checked = Run("lb_crash_health", until_ms=10_000)
    assert blind.drops(6000, 10_000) > 0.15 * blind.arrivals(6000, 10_000)
    assert checked.drops(6000, 10_000) == 0
    assert checked.count("assign", 5000, 10_000, backend="b2") == 0
    assert blind.count("assign", 5000, 10_000, backend="b2") > 0.15 * blind.count("assign", 5000, 10_000)


def test_a_hot_key_pins_one_backend_and_bounded_loads_spread_it():
    plain = Run("lb_hot_key", until_ms=8000)
    bounded = Run("lb_hot_key_bounded", until_ms=8000)
    assert plain.load(2000, 8000) > 4 * bounded.load(2000, 8000)
    assert min(plain.p99(t) for t in (4000.0, 6000.0, 8000.0)) > 2 * max(bounded.p99(t) for t in (4000.0, 6000.0, 8000.0))


def test_a_retry_storm_multiplies_the_work_and_a_budget_stops_it():
    storm = Run("lb_retry_storm", until_ms=8000)
    budget = Run("lb_retry_budget", until_ms=8000)
    assert storm.count("retry") > 4 * budget.count("retry")
    burst = storm.arrivals(3000, 6000)
    assert storm.count("retry", 3000, 6000) > burst  # more retries than new requests
    assert storm.count("assign") > 1.5 * budget.count("assign")  # the backends' work


def test_power_of_two_choices_has_a_lower_maximum_load_than_random():
    run = Run("lb_p2c_vs_random", until_ms=23_000)
    assert run.load(4000, 12_000) > 2 * run.load(15_000, 23_000)
    assert run.p99(12_000) > 1.5 * run.p99(23_000)


@pytest.mark.parametrize("name", sorted(p.stem for p in SCENARIOS.glob("lb_*.json")))
def test_a_lesson_is_within_the_browser_caps(name):
    """Each plays to its end in the browser (nodes, rate, and the 5000 operations a replay may
    hold)."""
    from app.limits import check_replay, check_scenario
    from app.settings import Settings

    sc = parse_scenario((SCENARIOS / f"{name}.json").read_bytes())
    check_scenario(sc, Settings())
    check_replay(sc, sc.duration_ms, Settings())
