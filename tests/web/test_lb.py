"""The load-balancing lab through the WebSocket: its live session, node summaries, pills, words,
the series frames carry (the same numbers the metrics observer wrote, bounded), the switches
(`configure` options, validated), the algorithm action mid-run in a share link, and exports that
carry the metric records."""

from __future__ import annotations

import numpy
import orjson
import pytest

from app.protocols import get_adapter
from app.protocols.lb import SERIES_FULL, SERIES_STEP, thin
from engine.protocols.lb.metrics import QUANTILES, metrics_of
from engine.scenario import parse_scenario
from engine.sim import Simulation

from .conftest import drain, settle


def open_lb(client, seed=1, run_ms=0.0, query=""):
    ws = client.websocket_connect(f"/ws?protocol=lb{query}").__enter__()
    hello = drain(ws, "hello")
    ws.send_json({"type": "control", "do": "pause"})
    if seed is not None:
        ws.send_json({"type": "control", "do": "new_seed", "seed": seed})
        hello = drain(ws, "hello")
        ws.send_json({"type": "control", "do": "pause"})
    if run_ms:
        ws.send_json({"type": "control", "do": "seek", "t": run_ms})
    return ws, hello, settle(ws)


def test_a_live_lb_session_has_clients_a_balancer_backends_and_charts(client):
    ws, hello, snap = open_lb(client, run_ms=3000)
    try:
        assert hello["protocol"] == "lb" and hello["title"] == "Load balancing"
        assert hello["layout"]["clients"] == ["o1", "o2", "o3"]
        assert hello["extras"]["backends"] == ["b1", "b2", "b3", "b4", "b5"]
        assert hello["extras"]["algorithm"] == "round_robin"
        assert len(hello["extras"]["algorithms"]) == 10 and all(w for _, _, w in hello["extras"]["algorithms"])
        assert snap["speed"] == pytest.approx(0.1)  # the lab's own default speed
        b1, lb1 = snap["nodes"]["b1"], snap["nodes"]["lb1"]
        assert b1["kind"] == "backend" and b1["concurrency"] == 2 and b1["served"] > 50
        assert lb1["kind"] == "balancer" and lb1["healthy"] == ["b1", "b2", "b3", "b4", "b5"]
        labels = {m[6] for m in snap["flight"]}
        assert labels <= {"req", "work", "done", "reply", "fail", "probe"} and labels
        s = snap["series"]
        assert s["full"] and s["t"] == [250.0 * i for i in range(1, 12)]
        assert set(s["util"]) == {"b1", "b2", "b3", "b4", "b5"} and len(s["util"]["b3"]) == 11
        assert 0.1 < s["util"]["b1"][-1] < 0.6 and s["p50"][-1] < s["p99"][-1]
        assert s["hist"]["counts"] and sum(s["hist"]["counts"]) == s["samples"][-1]
        new = []
        for _ in range(10):
            ws.send_json({"type": "control", "do": "step", "count": 300})
            for _ in range(50):
                f = ws.receive_json()
                if f["type"] == "events" and "series" in f:
                    new.append(f["series"])
                if f["type"] == "snapshot":
                    break
        assert new and not new[0]["full"] and new[0]["t"][0] == 3000.0
    finally:
        ws.__exit__(None, None, None)


def test_the_series_are_the_observers_numbers_and_numpys_percentiles(client):
    """What the page charts is the metric records as written, and those are numpy's percentiles
    of the window's latencies (the same samples, from the records)."""
    ws, hello, snap = open_lb(client, seed=7, run_ms=4000)
    ws.__exit__(None, None, None)
    sc = parse_scenario(hello["scenario"])
    sim = Simulation(sc)
    done = []
    sim.subscribe(lambda r: done.append((r["t"], r["latency_ms"]))
                  if r["type"] == "request" and r["event"] == "done" else None, messages=False)
    sim.run_until(4000)
    out = metrics_of(sim).out
    s = snap["series"]
    assert s["t"] == [r["t"] for r in out]
    window = sc.config.metrics.window_ms
    for i, rec in enumerate(out):
        xs = [x for t, x in done if rec["t"] - window <= t < rec["t"]]
        for col, q in zip(("p50", "p95", "p99", "p999"), (q for _, q in QUANTILES)):
            assert s[col][i] == rec["latency_ms"]["p99.9" if col == "p999" else col]
            assert s[col][i] == pytest.approx(numpy.percentile(xs, q), abs=1e-3)  # (rounded to µs)


def test_series_are_bounded_per_frame():
    a = get_adapter("lb")
    recs = [{"type": "metric", "t": float(i), "latency_ms": {"p50": 1, "p95": 2, "p99": 3, "p99.9": 4},
             "throughput_per_s": 1, "arrivals_per_s": 1, "drops": 0, "rejected": 0, "timed_out": 0,
             "retries": 0, "samples": 1, "histogram": {"edges_ms": [1], "counts": [1, 0]},
             "backends": {"b1": {"utilisation": 0.5, "in_flight": 1, "queue": 0}}} for i in range(1000)]
    full, step = a.series(recs, True), a.series(recs, False)
    # A snapshot carries the latest SERIES_FULL records (the sliding window the world keeps).
    assert full["t"] == [float(i) for i in range(1000 - SERIES_FULL, 1000)]
    assert len(step["t"]) == SERIES_STEP and step["t"][-1] == 999.0
    assert len(orjson.dumps(full)) < 40_000
    assert thin([1, 2, 3], 5) == [1, 2, 3] and a.series([], False) is None


def test_lb_switches_are_validated_and_reshape_the_run(client):
    ws, hello, snap = open_lb(client)
    try:
        for opts, needle in [({"rate_per_s": 500}, "control.options.rate_per_s: a number from 1 to 200"),
                             ({"algorithm": "fastest"}, "control.options.algorithm: one of"),
                             ({"retries": 1.5}, "control.options.retries: a whole number"),
                             ({"health": "yes"}, "control.options.health: must be true or false"),
                             ({"warp": 1}, "control.options.warp: unknown option for lb")]:
            ws.send_json({"type": "control", "do": "configure", "options": opts})
            assert needle in drain(ws, "error")["message"]
        ws.send_json({"type": "control", "do": "configure", "nodes": 10,
                      "options": {"rate_per_s": 200, "cost_spread": 1.0, "slow_fleet": 0.25,
                                  "algorithm": "least_connections", "health": True, "retries": 2}})
        h = drain(ws, "hello")
        sc = h["scenario"]
        assert sc["nodes"] == 10 and sc["workload"]["rate_per_s"] == 200
        assert sc["workload"]["cost"]["dist"] == "lognormal" and sc["workload"]["cost"]["spread"] == 1.0
        assert [b["speed"] for b in sc["config"]["backends"]] == [1.0] * 5 + [0.25] * 5
        assert sc["config"]["algorithm"] == "least_connections" and sc["config"]["health"]["enabled"]
        assert sc["config"]["retries"]["max_retries"] == 2
        assert len(h["topology"]["nodes"]) == 11  # over the 9-node cap of consensus protocols
        ws.send_json({"type": "control", "do": "configure", "nodes": 22})
        assert "control.nodes: at most 22" not in drain(ws, "error")["message"]  # the engine: 1-20
    finally:
        ws.__exit__(None, None, None)


def test_switching_algorithm_mid_run_is_an_action_a_share_link_reproduces(client):
    ws, hello, snap = open_lb(client, seed=3, run_ms=1000)
    try:
        ws.send_json({"type": "action", "action": {"do": "algorithm", "node": "lb1",
                                                   "algorithm": "peak_ewma"}})
        ev = drain(ws, "events")
        assert ev["acts"][0]["do"] == "algorithm"
        assert any("You: switched lb1 to peak-ewma" in w for _, w in ev["ev"])
        assert any("lb1 balances with peak-ewma" in w for _, w in ev["ev"])
        ws.send_json({"type": "action", "action": {"do": "slow", "node": "b2", "factor": 0.1}})
        assert any("slowed b2 to \u00d70.1" in w for _, w in drain(ws, "events")["ev"])
        ws.send_json({"type": "action", "action": {"do": "algorithm", "node": "b2", "algorithm": "random"}})
        assert "only a balancer" in drain(ws, "error")["message"]
        ws.send_json({"type": "control", "do": "seek", "t": 2500})
        snap = settle(ws)
        assert snap["nodes"]["lb1"]["algorithm"] == "peak_ewma"
        ws.send_json({"type": "control", "do": "share"})
        payload = drain(ws, "share")["payload"]
    finally:
        ws.__exit__(None, None, None)
    with client.websocket_connect(f"/ws?share={payload}") as ws2:
        again = drain(ws2, "snapshot")
    assert (again["t"], again["digest"]) == (snap["t"], snap["digest"])
    assert again["series"] == snap["series"]
    r = client.get(f"/api/trace?share={payload}")
    lines = [orjson.loads(x) for x in r.content.splitlines()]
    metrics = [x for x in lines if x["type"] == "metric"]
    assert [m["t"] for m in metrics] == snap["series"]["t"]
    assert [x["t"] for x in lines[1:]] == sorted(x["t"] for x in lines[1:])


def test_a_rewind_sends_the_rewound_series_and_an_import_resumes_the_same_state(client):
    ws, hello, snap = open_lb(client, seed=2, run_ms=4000)
    try:
        ws.send_json({"type": "control", "do": "seek", "t": 1500})
        back = settle(ws)
        assert back["series"]["full"] and back["series"]["t"][-1] <= 1500
        assert back["series"]["t"] == snap["series"]["t"][:len(back["series"]["t"])]
        ws.send_json({"type": "control", "do": "share"})
        payload = drain(ws, "share")["payload"]
    finally:
        ws.__exit__(None, None, None)
    trace = client.get(f"/api/trace?share={payload}").content
    r = client.post("/api/import", content=trace, headers={"Content-Type": "application/x-ndjson"})
    assert r.status_code == 200, r.text
    with client.websocket_connect(f"/ws?share={r.json()['share']}") as ws2:
        again = drain(ws2, "snapshot")
    assert (again["t"], again["digest"]) == (back["t"], back["digest"])


def test_the_mutations_tab_lists_the_lbs_mutations_but_not_its_panel_controls(client):
    html = client.get("/fragments/mutations?protocol=lb").text
    assert 'value="stale_health"' in html and 'value="p2c_scan_all"' in html
    assert 'name="ext"' not in html  # rate, algorithm...: the panel's; no key-value clients
    raft = client.get("/fragments/mutations?protocol=raft").text
    assert 'value="pre_vote"' in raft and 'value="workload"' in raft
