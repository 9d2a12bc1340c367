"""The load balancer in the kernel: requests flow and are conserved, each algorithm's checker
holds on a clean run and catches its mutation, health checks, ejection, retries and their
budget, the slow action, two balancers, the metrics observer (percentiles as numpy computes
them), and `playground check` on an LB trace."""

from __future__ import annotations

import io
import random

import numpy
import orjson
import pytest

from engine.protocols.lb.checkers import Conservation, LeastConnectionsPick
from engine.protocols.lb.config import LbConfig
from engine.protocols.lb.metrics import QUANTILES, metrics_of, percentile
from engine.protocols.lb.words import LB_WORDS
from engine.protocols import Topology
from engine.run import run_scenario
from engine.scenario import ScenarioError, parse_action, parse_scenario
from engine.sim import Simulation
from engine.trace import check_records, read_trace
from engine.transcript import line


def run(config=None, workload=None, actions=(), seed=3, duration_ms=10_000, topology=None):
    d = {"protocol": "lb", "seed": seed, "duration_ms": duration_ms,
         "topology": topology or {"backends": 4}, "config": config or {},
         "workload": {"kind": "open_loop", "rate_per_s": 200, "cost": {"mean_ms": 10},
                      **(workload or {})},
         "actions": list(actions)}
    sim = Simulation(parse_scenario(d))
    recs: list[dict] = []
    sim.subscribe(recs.append, messages=False)
    sim.run()
    return sim, recs


def events(recs, event, **match):
    return [r for r in recs if r["type"] == "request" and r["event"] == event
            and all(r.get(k) == v for k, v in match.items())]


def invariants(sim):
    return {v["invariant"] for v in sim.violations}


def test_requests_flow_and_are_conserved():
    sim, recs = run()
    cons = sim.checkers[0]
    assert isinstance(cons, Conservation) and sim.violations == []
    c = cons.counts
    assert c["arrived"] == c["done"] + c["rejected"] + c["timed_out"] + cons.in_flight
    assert abs(c["arrived"] - 2000) < 200 and c["done"] > 0.95 * c["arrived"]
    done = events(recs, "done")
    assert min(r["latency_ms"] for r in done) >= 4 * 10  # four hops of >= 10 ms
    assert {r["backend"] for r in done} == {"b1", "b2", "b3", "b4"}
    assert len(events(recs, "start")) >= len(done)
    states = [r for r in recs if r["type"] == "state" and r["node"] == "b1"]
    assert states and set(states[-1]) >= {"up", "healthy", "in_flight", "queue"}
    lb = sim.views()["lb1"]
    assert lb["algorithm"] == "round_robin" and lb["healthy"] == ["b1", "b2", "b3", "b4"]


@pytest.mark.parametrize("algorithm", sorted(LbConfig.model_fields["algorithm"].annotation.__args__))
def test_every_algorithm_runs_clean_through_crashes_and_slowness(algorithm):
    sim, recs = run({"algorithm": algorithm, "maglev_table_size": 251,
                     "backends": [{"weight": 3}, {"speed": 0.5}], "health": {"enabled": True},
                     "outlier": {"enabled": True}, "retries": {"max_retries": 1}},
                    {"keys": 30}, duration_ms=8000,
                    actions=[{"at": 2000, "do": "crash", "node": "b2"},
                             {"at": 5000, "do": "restart", "node": "b2"},
                             {"at": 3000, "do": "slow", "node": "b3", "factor": 0.2}])
    assert sim.violations == []
    assert len(events(recs, "done")) > 1000


def test_smooth_wrr_5_1_1_in_the_kernel():
    sim, recs = run({"algorithm": "weighted_round_robin",
                     "backends": [{"weight": 5}, {"weight": 1}, {"weight": 1}]},
                    topology={"backends": 3}, duration_ms=3000)
    seq = "".join({"b1": "a", "b2": "b", "b3": "c"}[r["backend"]] for r in events(recs, "assign"))
    assert seq[:70] == "aabacaa" * 10 and sim.violations == []


def test_round_robin_counts_differ_by_at_most_one():
    sim, recs = run(duration_ms=3000)
    counts = [len(events(recs, "assign", backend=b)) for b in ("b1", "b2", "b3", "b4")]
    assert max(counts) - min(counts) <= 1 and sim.violations == []


CRASH_B2 = [{"at": 1000, "do": "crash", "node": "b2"}]
HEALTH = {"enabled": True, "interval_ms": 200, "timeout_ms": 100, "fall": 2, "rise": 2}


def test_health_checks_take_a_crashed_backend_out_and_back():
    sim, recs = run({"health": HEALTH}, actions=CRASH_B2 + [{"at": 4000, "do": "restart", "node": "b2"}])
    lb = [r for r in recs if r["type"] == "state" and r["node"] == "lb1"]
    out = next(r for r in lb if "b2" not in r["healthy"])
    back = next(r for r in lb if r["t"] > out["t"] and "b2" in r["healthy"])
    assert 1000 < out["t"] <= 1000 + 3 * 200 + 100 and 4000 < back["t"] <= 4000 + 3 * 200
    assert not [r for r in events(recs, "assign", backend="b2") if out["t"] < r["t"] < back["t"]]
    assert sim.violations == []


def test_without_health_checks_a_crashed_backend_keeps_getting_requests():
    sim, recs = run(actions=CRASH_B2)
    late = events(recs, "assign", backend="b2")
    assert [r for r in late if r["t"] > 5000]
    assert len(events(recs, "timeout")) > 200 and sim.violations == []


def test_outlier_detection_ejects_a_failing_backend_for_a_while():
    sim, recs = run({"try_timeout_ms": 200, "outlier": {"enabled": True, "consecutive_errors": 3,
                                                        "ejection_ms": 2000}},
                    actions=[{"at": 1000, "do": "pause", "node": "b1"}])
    lb = [r for r in recs if r["type"] == "state" and r["node"] == "lb1"]
    ejected = [r for r in lb if r["ejected"] == ["b1"]]
    assert ejected and ejected[0]["t"] < 1300
    back = [r for r in lb if r["t"] > ejected[0]["t"] and r["ejected"] == []]
    assert back and back[0]["t"] == pytest.approx(ejected[0]["t"] + 2000)
    assert sim.violations == []


def test_retries_go_to_another_backend_and_the_budget_stops_a_storm():
    overloaded = {"backend": {"queue": 0}, "retries": {"max_retries": 3, "budget": False}}
    _, storm = run(overloaded, {"rate_per_s": 500})
    retries = events(storm, "retry")
    assert len(retries) > 500
    tries = {}
    for r in events(storm, "assign"):
        tries.setdefault((r["client"], r["id"]), []).append(r["backend"])
    assert all(len(set(bs)) == len(bs) for bs in tries.values())  # never the same backend twice
    budget = {"backend": {"queue": 0}, "retries": {"max_retries": 3, "budget_ratio": 0.1,
                                                    "budget_min_per_s": 1, "budget_ttl_ms": 1000}}
    sim, capped = run(budget, {"rate_per_s": 500})
    assert len(events(capped, "retry")) <= 0.1 * len(events(capped, "arrive")) + 10 * 1
    assert sim.violations == []


def test_jittered_backoff_delays_the_retry():
    sim, recs = run({"backend": {"queue": 0}, "retries": {"max_retries": 1, "budget": False,
                                                         "backoff_ms": 30}}, {"rate_per_s": 400})
    retry = events(recs, "retry")[0]
    again = next(r for r in events(recs, "assign", client=retry["client"], id=retry["id"])
                 if r["attempt"] == 2)
    assert retry["t"] <= again["t"] <= retry["t"] + 30 and sim.violations == []


def test_slowing_a_backend_slows_its_requests():
    sim, recs = run(actions=[{"at": 3000, "do": "slow", "node": "b1", "factor": 0.5}],
                    workload={"rate_per_s": 100})
    states = [r for r in recs if r["type"] == "state" and r["node"] == "b1"]
    assert states[-1]["speed"] == pytest.approx(0.5)

    def mean(rs):
        return sum(r["latency_ms"] for r in rs) / len(rs)
    b1 = events(recs, "done", backend="b1")
    # about 10 ms of service (and little queueing) before, 20 ms at 50% busy after
    assert mean([r for r in b1 if r["t"] > 4000]) > 10 + mean([r for r in b1 if r["t"] < 3000])
    with pytest.raises(ScenarioError, match="action.node: only a backend"):
        parse_action({"do": "slow", "node": "lb1", "factor": 0.5}, sim.servers,
                     protocol=sim.protocol)


def test_peak_ewma_shuns_a_slow_backend_round_robin_does_not():
    fleet = {"backends": [{"speed": 0.1}], "backend": {"concurrency": 2}}
    share = {}
    for algorithm in ("round_robin", "peak_ewma"):
        _, recs = run({**fleet, "algorithm": algorithm}, {"rate_per_s": 150})
        share[algorithm] = len(events(recs, "assign", backend="b1")) / len(events(recs, "assign"))
    assert share["round_robin"] == pytest.approx(0.25, abs=0.01) and share["peak_ewma"] < 0.1


def test_two_balancers_each_keep_their_own_view():
    sim, recs = run({"algorithm": "least_connections"}, {"clients": 2},
                    topology={"backends": 3, "balancers": 2})
    assert {r["lb"] for r in events(recs, "assign")} == {"lb1", "lb2"}
    assert sim.nodes["lb1"].in_flight is not sim.nodes["lb2"].in_flight
    assert sim.violations == []


@pytest.mark.parametrize("mutation, config, actions, caught", [
    ("stale_health", {"health": HEALTH}, CRASH_B2, "Healthy assignments"),
    ("sticky_rr", {"health": HEALTH}, CRASH_B2, "Round robin evenness"),
    ("p2c_scan_all", {"algorithm": "power_of_d"}, (), "Power of d choices"),
])
def test_each_mutation_is_caught_by_its_checker(mutation, config, actions, caught):
    clean, _ = run(config, actions=actions, duration_ms=5000)
    assert clean.violations == []
    sim, _ = run({**config, "mutations": [mutation]}, actions=actions, duration_ms=5000)
    assert caught in invariants(sim), sim.violations[:3]


def test_least_connections_checker_catches_a_bad_pick():
    topo = Topology((("lb1", "balancer"), ("b1", "backend"), ("b2", "backend")))
    chk = LeastConnectionsPick(1, topo.ids, ["b1", "b2"], LbConfig())
    chk.observe({"type": "state", "t": 0, "node": "lb1", "role": "balancer",
                 "algorithm": "least_connections", "healthy": ["b1", "b2"], "ejected": []})
    base = {"type": "request", "client": "o1", "event": "assign", "lb": "lb1", "attempt": 1}
    chk.observe({**base, "t": 1, "id": 1, "backend": "b1", "seen": {"b1": 1, "b2": 1}})
    assert chk.violations == []
    chk.observe({**base, "t": 2, "id": 2, "backend": "b1", "seen": {"b1": 2, "b2": 1}})
    assert chk.violations and "picked b1 (2 in flight) over b2 (1)" in chk.violations[0]["detail"]


def test_conservation_catches_double_ends_and_lost_requests():
    c = Conservation(1, ["lb1"])
    r = {"type": "request", "client": "o1"}
    c.observe({**r, "t": 0, "id": 1, "event": "arrive", "timeout_ms": 100})
    c.observe({**r, "t": 5, "id": 1, "event": "done", "latency_ms": 5})
    c.observe({**r, "t": 6, "id": 1, "event": "timeout"})
    c.observe({**r, "t": 7, "id": 2, "event": "arrive", "timeout_ms": 100})
    c.observe({**r, "t": 200, "id": 3, "event": "arrive", "timeout_ms": 100})
    details = [v["detail"] for v in c.violations]
    assert "o1#1 ended (timeout) but was not in flight" in details[0]
    assert "o1#2 still in flight" in details[1] and len(details) == 2


@pytest.mark.parametrize("n", [1, 2, 3, 10, 101, 1000])
def test_percentiles_agree_with_numpy(n):
    rnd = random.Random(n)
    xs = sorted(rnd.lognormvariate(2, 1) for _ in range(n))
    for _, q in QUANTILES:
        assert percentile(xs, q) == pytest.approx(numpy.percentile(xs, q), rel=1e-12)
    assert percentile([], 50) is None


def test_the_metrics_observer_writes_time_series():
    sim, recs = run({"backend": {"concurrency": 2}}, duration_ms=10_000)
    m = metrics_of(sim)
    out = m.take()
    assert [r["t"] for r in out] == [1000.0 * i for i in range(1, 10)] and m.take() == []
    mid = out[5]
    assert mid["type"] == "metric" and 150 < mid["throughput_per_s"] < 250
    # 200/s x 10 ms over 4 backends x 2 slots: 25% busy
    assert 0.15 < sum(b["utilisation"] for b in mid["backends"].values()) / 4 < 0.35
    lat = mid["latency_ms"]
    assert 40 < lat["p50"] <= lat["p95"] <= lat["p99"] <= lat["p99.9"]
    assert sum(mid["histogram"]["counts"]) == mid["samples"]
    served = sum(b["served"] for r in out for b in r["backends"].values())
    assert served == len([r for r in events(recs, "done") if r["t"] < 9000])
    assert "throughput=" in line(mid, "lb")


def test_playground_check_runs_the_lb_checkers_on_a_trace():
    for mutations, ok in (([], True), (["p2c_scan_all"], False)):
        sc = parse_scenario({"protocol": "lb", "seed": 2, "duration_ms": 3000, "nodes": 4,
                             "config": {"algorithm": "power_of_d", "mutations": mutations},
                             "workload": {"kind": "open_loop", "rate_per_s": 300}})
        buf = io.BytesIO()
        summary = run_scenario(sc, trace=buf)
        head, records = read_trace(buf.getvalue().splitlines())
        assert head["protocol"] == "lb"
        checked = check_records(head, records)
        assert (checked["violations"] == []) is ok
        assert checked["violations"] == summary["violations"]


def test_every_lb_record_and_message_has_words():
    sim = Simulation(parse_scenario({"protocol": "lb", "nodes": 2, "duration_ms": 2000,
                                     "config": {"health": {"enabled": True}},
                                     "workload": {"kind": "open_loop", "rate_per_s": 100}}))
    recs = []
    sim.subscribe(recs.append)
    sim.run()
    kinds = {r["msg"]["kind"] for r in recs if r["type"] == "send"}
    assert kinds == {"ClientRequest", "Work", "Done", "ClientReply", "Probe", "ProbeReply"}
    for r in recs + metrics_of(sim).take():
        if r["type"] not in ("deliver", "end"):
            assert line(r, LB_WORDS)


def test_bad_lb_scenarios_name_the_field():
    for bad, needle in [({"config": {"maglev_table_size": 1000}}, "config.maglev_table_size: "
                         "1000 is not prime"),
                        ({"topology": {"backends": 21}}, "topology.backends"),
                        ({"topology": {"backends": 2, "balancers": 3}}, "topology.balancers"),
                        ({"topology": {"backend": 2}}, "topology.backend: unknown field"),
                        ({"config": {"algorithm": "fastest"}}, "config.algorithm"),
                        ({"config": {"mutations": ["x"]}}, "unknown mutation 'x'"),
                        ({"nodes": 2, "config": {"backends": [{}, {}, {}]}}, "config.backends")]:
        with pytest.raises(ScenarioError) as e:
            parse_scenario({"protocol": "lb", **bad})
        assert needle in str(e.value)


def test_metric_records_reach_the_trace_in_time_order_and_it_still_checks():
    sc = parse_scenario({"protocol": "lb", "seed": 5, "duration_ms": 4000, "nodes": 3,
                         "config": {"metrics": {"interval_ms": 500}},
                         "workload": {"kind": "open_loop", "rate_per_s": 150}})
    buf = io.BytesIO()
    summary = run_scenario(sc, trace=buf)
    head, records = read_trace(buf.getvalue().splitlines())
    recs = list(records)
    metrics = [r for r in recs if r["type"] == "metric"]
    assert [r["t"] for r in metrics] == [500.0 * i for i in range(1, 8)]
    ts = [r["t"] for r in recs]
    assert ts == sorted(ts)  # each written just before the record that made it due
    # The same series the observer keeps in a run without a trace.
    sim = Simulation(sc)
    sim.run()
    assert metrics == metrics_of(sim).out
    assert check_records(head, iter(recs))["violations"] == summary["violations"] == []


def test_the_algorithm_action_switches_mid_run_and_replays_exactly():
    acts = [{"at": 2000, "do": "algorithm", "node": "lb1", "algorithm": "least_connections"}]
    sim, recs = run({"algorithm": "round_robin"}, actions=acts, duration_ms=4000)
    lb = [r for r in recs if r["type"] == "state" and r["node"] == "lb1"]
    assert [(r["t"], r["algorithm"]) for r in lb] == [(2000.0, "least_connections")]
    assigns = events(recs, "assign")
    assert all("seen" not in r for r in assigns if r["t"] < 2000)
    assert all("seen" in r for r in assigns if r["t"] > 2000 and r["attempt"] == 1)
    assert all(not c.violations for c in sim.checkers)
    again, _ = run({"algorithm": "round_robin"}, actions=acts, duration_ms=4000)
    assert again.digest() == sim.digest()
    # A restarted balancer is a fresh one: it runs the configured algorithm again.
    sim2, recs2 = run({"algorithm": "round_robin"}, duration_ms=4000, actions=acts + [
        {"at": 3000, "do": "crash", "node": "lb1"}, {"at": 3100, "do": "restart", "node": "lb1"}])
    assert sim2.nodes["lb1"].algo.name == "round_robin"
    with pytest.raises(ScenarioError, match=r"actions\[0\]\.node: only a balancer"):
        parse_scenario({"protocol": "lb", "nodes": 2,
                        "actions": [{"do": "algorithm", "node": "b1", "algorithm": "random"}]})


def _lc_crash_spec() -> dict:
    """Least connections with health checks and retries; a backend crashes and restarts."""
    return {"protocol": "lb", "seed": 5, "duration_ms": 6000, "topology": {"backends": 4},
            "config": {"algorithm": "least_connections", "try_timeout_ms": 300,
                       "health": {"enabled": True, "interval_ms": 400, "timeout_ms": 200},
                       "retries": {"max_retries": 2}},
            "workload": {"kind": "open_loop", "rate_per_s": 250, "timeout_ms": 800,
                         "cost": {"dist": "exponential", "mean_ms": 12}},
            "actions": [{"at": 1500, "do": "crash", "node": "b2"},
                        {"at": 3500, "do": "restart", "node": "b2"}]}


@pytest.mark.parametrize("source", ["least_connections_crash", "lb_crash_health.json",
                                    "lb_retry_storm.json"])
def test_records_nobody_reads_are_skipped_without_changing_the_run(source):
    """Unwatched (no checker, no trace), the client, balancer and backend skip building their
    records (`ctx.recording`), and least connections its evidence; the run must be the same one:
    the same digest and events as with every checker on, and an observer that arrives half-way
    gets exactly the records of one that watched all along."""
    if source.endswith(".json"):
        from pathlib import Path

        spec = orjson.loads((Path(__file__).parents[2] / "scenarios" / source).read_bytes())
    else:
        spec = _lc_crash_spec()
    sc = parse_scenario(spec)
    checked = Simulation(sc)
    checked.run()
    unwatched = Simulation(sc, checkers=False)
    unwatched.run()
    assert (unwatched.digest(), unwatched.events) == (checked.digest(), checked.events)
    assert checked.violations == []

    half = sc.duration_ms / 2
    always = Simulation(sc, checkers=False)
    seen: list[dict] = []
    always.subscribe(seen.append)
    always.run()
    late = Simulation(sc, checkers=False)
    late.run_until(half)
    got: list[dict] = []
    late.subscribe(got.append)
    late.run()
    want = [r for r in seen if r["t"] > half]
    assert sum(r["type"] == "request" for r in want) > 300
    assert [orjson.dumps(r) for r in got] == [orjson.dumps(r) for r in want]


def test_a_retry_budget_on_a_healthy_fleet_forgets_requests_older_than_its_ttl():
    """The budget counts the requests of its last ttl; a fleet that never retries must not keep
    every request it ever saw (the world's state, and so every checkpoint, would grow)."""
    import json
    from pathlib import Path

    from engine.scenario import parse_scenario
    from engine.sim import Simulation

    raw = json.loads((Path(__file__).resolve().parents[2] / "scenarios" / "lb_retry_budget.json").read_text())
    raw["workload"].pop("bursts")
    raw["workload"]["rate_per_s"] = 60  # well within the fleet: no rejections, no retries
    raw["duration_ms"] = 60_000
    sc = parse_scenario(raw)
    sim = Simulation(sc)
    sim.run_until(60_000)
    bal = sim.nodes["lb1"]
    ttl_s = sc.config.retries.budget_ttl_ms / 1000
    assert not bal.budget_retries  # nothing retried: the old code never trimmed
    assert 0 < len(bal.budget_reqs) <= 60 * ttl_s * 1.5, len(bal.budget_reqs)


def test_the_metrics_window_kept_sorted_and_binned_is_the_window_itself():
    """The observer keeps the window's latencies sorted and binned as they come and go (so a
    record's cost does not grow with the window): at every record they are exactly the window's
    latencies, sorted, and their histogram."""
    import bisect
    import json
    from pathlib import Path

    from engine.protocols.lb.metrics import HISTOGRAM_EDGES_MS
    from engine.scenario import parse_scenario
    from engine.sim import Simulation

    raw = json.loads((Path(__file__).resolve().parents[2] / "scenarios" / "lb_retry_budget.json").read_text())
    raw["config"]["metrics"] = {"interval_ms": 50, "window_ms": 1500}
    sim = Simulation(parse_scenario(raw))
    m = metrics_of(sim)
    checked = 0
    for t in range(500, 10_001, 500):
        sim.run_until(t)
        m.catch_up(t)
        xs = sorted(x for _, x in m.latencies)
        assert m.ranked == xs
        counts = [0] * (len(HISTOGRAM_EDGES_MS) + 1)
        for x in xs:
            counts[bisect.bisect_right(HISTOGRAM_EDGES_MS, x)] += 1
        assert m.binned == counts and m.out[-1]["histogram"]["counts"] == counts
        assert m.out[-1]["samples"] == len(xs)
        checked += bool(xs)
    assert checked > 10
