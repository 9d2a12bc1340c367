"""The open-loop arrival process: Poisson at the configured rate, changed by the schedule and
bursts, costs with the chosen mean, Zipf-distributed keys, and deterministic per seed."""

import math
import statistics

import pytest

from engine import rng as rngmod
from engine.protocols import REGISTRY
from engine.scenario import ScenarioError, parse_scenario
from engine.sim import Simulation
from engine.workloads.open_loop import (Cost, OpenLoopWorkload, draw_cost_ms, next_arrival_us,
                                        zipf_cdf)


def arrivals(wl: OpenLoopWorkload, until_ms: float, seed: int = 1) -> list[float]:
    rng = rngmod.stream(seed, "client:o1")
    changes = [int(round(t * 1000)) for t in wl.changes_ms()]
    out, t = [], 0
    while True:
        t = next_arrival_us(wl, changes, t, rng)
        if t is None or t > until_ms * 1000:
            return out
        out.append(t / 1000)


def count(ts, lo, hi):
    return sum(lo <= t < hi for t in ts)


def test_poisson_at_the_rate():
    ts = arrivals(OpenLoopWorkload(kind="open_loop", rate_per_s=200), 20_000)
    assert abs(len(ts) - 4000) < 4 * math.sqrt(4000)
    gaps = [b - a for a, b in zip(ts, ts[1:])]
    assert abs(statistics.mean(gaps) - 5.0) < 0.3
    assert abs(statistics.stdev(gaps) - 5.0) < 0.5  # exponential: sd = mean


def test_schedule_and_bursts_change_the_rate():
    wl = OpenLoopWorkload(kind="open_loop", rate_per_s=100,
                          schedule=[{"at_ms": 10_000, "rate_per_s": 400}, {"at_ms": 20_000, "rate_per_s": 0}],
                          bursts=[{"at_ms": 2_000, "duration_ms": 1_000, "factor": 10}])
    ts = arrivals(wl, 30_000)
    assert abs(count(ts, 0, 2000) - 200) < 60
    assert abs(count(ts, 2000, 3000) - 1000) < 130
    assert abs(count(ts, 3000, 10_000) - 700) < 110
    assert abs(count(ts, 10_000, 20_000) - 4000) < 260
    assert count(ts, 20_000, 30_000) == 0
    assert wl.rate_at(2500) == 1000 and wl.rate_at(15_000) == 400 and wl.rate_at(25_000) == 0


@pytest.mark.parametrize("dist, spread", [("constant", 0), ("exponential", 0), ("uniform", 0.5),
                                          ("lognormal", 1.0), ("pareto", 2.5)])
def test_costs_have_the_mean(dist, spread):
    rng = rngmod.stream(3, "costs")
    cost = Cost(dist=dist, mean_ms=20, spread=spread)
    xs = [draw_cost_ms(cost, rng) for _ in range(20_000)]
    assert min(xs) >= 0
    assert abs(statistics.mean(xs) - 20) < (3 if dist == "pareto" else 1)
    if dist == "constant":
        assert set(xs) == {20}


def test_zipf_keys_are_skewed_like_zipf():
    cdf = zipf_cdf(10, 1.0)
    assert cdf[0] / cdf[-1] == pytest.approx(1 / sum(1 / k for k in range(1, 11)))


def test_bad_workloads_name_the_field(monkeypatch):
    monkeypatch.setitem(REGISTRY, "relay", "tests.engine.relay")
    for bad, needle in [({"cost": {"dist": "pareto", "spread": 1}}, "workload.cost: a Pareto cost"),
                        ({"rate_per_s": -1}, "workload.rate_per_s"),
                        ({"schedule": [{"at_ms": 5, "rate_per_s": 1}, {"at_ms": 1, "rate_per_s": 1}]},
                         "workload: schedule: steps must be in time order"),
                        ({"kind": "kv"}, "workload.kind: relay takes workloads of kind 'open_loop'")]:
        with pytest.raises(ScenarioError) as e:
            parse_scenario({"protocol": "relay", "workload": {"kind": "open_loop", **bad}})
        assert needle in str(e.value)


def _relay(monkeypatch, **workload):
    monkeypatch.setitem(REGISTRY, "relay", "tests.engine.relay")
    sc = parse_scenario({"protocol": "relay", "nodes": 2, "seed": 4, "duration_ms": 4000,
                         "workload": {"kind": "open_loop", "rate_per_s": 100, "keys": 5,
                                      "cost": {"dist": "constant", "mean_ms": 2}, **workload}})
    sim = Simulation(sc)
    recs: list[dict] = []
    sim.subscribe(recs.append, messages=False)
    sim.run()
    return sim, [r for r in recs if r["type"] == "request"]


def test_in_the_kernel_requests_arrive_are_served_and_timed(monkeypatch):
    sim, recs = _relay(monkeypatch)
    invoked = [r for r in recs if r["event"] == "arrive"]
    ok = [r for r in recs if r["event"] == "done"]
    assert abs(len(invoked) - 400) < 80
    done = {r["id"] for r in ok}
    assert all(r["id"] in done for r in invoked if r["t"] < 3900)  # served, but the last in flight
    assert all(r["to"] == "lb" for r in invoked)
    assert min(r["latency_ms"] for r in ok) >= 2 + 4 * 10  # four hops of >= 10 ms, 2 ms of work
    keys = [r["key"] for r in invoked]
    assert keys.count("k1") > keys.count("k5")
    assert sim.violations == []


def test_an_open_loop_does_not_wait_for_completions(monkeypatch):
    """Requests keep arriving while nothing answers: the balancer is down the whole run."""
    monkeypatch.setitem(REGISTRY, "relay", "tests.engine.relay")
    sc = parse_scenario({"protocol": "relay", "nodes": 2, "seed": 4, "duration_ms": 4000,
                         "workload": {"kind": "open_loop", "rate_per_s": 100, "timeout_ms": 500},
                         "actions": [{"at": 0, "do": "crash", "node": "lb"}]})
    sim = Simulation(sc)
    recs: list[dict] = []
    sim.subscribe(recs.append, messages=False)
    sim.run()
    ops = [r["event"] for r in recs if r["type"] == "request"]
    assert abs(ops.count("arrive") - 400) < 80
    assert ops.count("timeout") >= ops.count("arrive") - 60 and "done" not in ops
    timed_out = [r for r in recs if r["type"] == "request" and r["event"] == "timeout"]
    arrived = {r["id"]: r["t"] for r in recs if r["type"] == "request" and r["event"] == "arrive"}
    assert all(abs(r["t"] - arrived[r["id"]] - 500) < 1e-6 for r in timed_out)  # one timer, exact deadlines


def test_several_clients_share_the_rate(monkeypatch):
    monkeypatch.setitem(REGISTRY, "relay", "tests.engine.relay")
    sc = parse_scenario({"protocol": "relay", "nodes": 2, "seed": 4, "duration_ms": 4000,
                         "workload": {"kind": "open_loop", "rate_per_s": 300, "clients": 3}})
    sim = Simulation(sc)
    recs: list[dict] = []
    sim.subscribe(recs.append, messages=False)
    sim.run()
    by = [r["client"] for r in recs if r["type"] == "request" and r["event"] == "arrive"]
    assert sim.clients == ["o1", "o2", "o3"]
    assert all(abs(by.count(c) - 400) < 80 for c in sim.clients)


def test_the_same_seed_gives_the_same_arrivals(monkeypatch):
    _, a = _relay(monkeypatch)
    _, b = _relay(monkeypatch)
    assert a == b
