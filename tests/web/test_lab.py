"""The lab socket `/ws/lab` (app/lab.py, app/routes/lab.py): trials of a measure streamed back
from worker processes, equal to `playground sweep`'s rows; caps and bad input refused naming the
field or the setting; cancel; a counterexample search bounded by runs. Nothing here waits on
wall-clock speed: every wait is for a frame."""

from __future__ import annotations

import contextlib
import json

import orjson
import pytest

from app.cli import main
from app.share import decode

from engine.sim import Simulation

from ..engine.helpers import SCENARIOS
from .conftest import drain, settle

RAFT = {"title": "Lab: Raft, 3 servers", "protocol": "raft", "nodes": 3, "seed": 2,
        "duration_ms": 1500, "workload": {"kind": "kv", "clients": 1, "rate_per_s": 20, "keys": 1}}
# engine/search.py finds this mutation's break in the first random run (tests/engine/test_search.py)
SEARCH = {"title": "Lab: a search", "protocol": "raft", "nodes": 5, "seed": 1, "duration_ms": 5000,
          "workload": {"kind": "kv", "clients": 1, "rate_per_s": 20, "keys": 1}}


@pytest.fixture
def lab_client(make_client, tmp_path):
    d = tmp_path / "scenarios"
    d.mkdir()
    (d / "labpaxos.json").write_text((SCENARIOS / "search" / "paxos.learn_without_majority.json")
                                     .read_text())
    (d / "labraft.json").write_text(json.dumps(RAFT))
    (d / "labsearch.json").write_text(json.dumps(SEARCH))
    return make_client(scenarios_dir=d, max_trials=12, lab_workers=2, search_max_runs=20)


@contextlib.contextmanager
def lab(client, lesson="labraft"):
    """A page's session on `lesson` (paused) and its lab socket, attached; yields (lab ws, ready
    frame, the page's ws)."""
    with client.websocket_connect(f"/ws?scenario={lesson}") as page:
        hello = drain(page, "hello")
        page.send_json({"type": "control", "do": "pause"})
        with client.websocket_connect("/ws/lab") as ws:
            ws.send_json({"type": "attach", "session": hello["session"], "secret": hello["secret"]})
            ready = ws.receive_json()
            assert ready["type"] == "ready", ready
            yield ws, ready, page


def until_done(ws, limit=5000) -> list[dict]:
    frames = []
    for _ in range(limit):
        f = ws.receive_json()
        frames.append(f)
        if f["type"] in ("done", "error"):
            return frames
    raise AssertionError("no done frame")


def test_ready_lists_the_protocols_measures_mutations_and_caps(lab_client):
    with lab(lab_client) as (ws, ready, _page):
        assert ready["protocol"] == "raft"
        assert {"commit_latency_ms", "leader_changes"} <= {m["name"] for m in ready["measures"]}
        assert "vote_without_log_check" in ready["mutations"]
        assert "nodes" in ready["params"] and "config.election_timeout_ms_max" in ready["params"]
        assert ready["limits"]["max_trials"] == 12 and ready["duration_ms"] == 1500


def test_trials_stream_rows_equal_to_playground_sweeps(lab_client, tmp_path, capsys):
    with lab(lab_client) as (ws, _, _page):
        ws.send_json({"type": "trials", "measure": "commit_latency_ms",
                      "param": "config.heartbeat_ms", "values": [40, 60], "trials": 4})
        frames = until_done(ws)
    started = frames[0]
    assert started["type"] == "started" and started["total"] == 8 and started["points"] == ["40", "60"]
    rows = [f for f in frames if f["type"] == "row"]
    progress = [f for f in frames if f["type"] == "progress" and "done" in f]
    done = frames[-1]
    assert done["type"] == "done" and not done["cancelled"] and done["runs"] == 8
    assert sorted(f["index"] for f in rows) == list(range(8))
    assert [p["done"] for p in progress] == sorted(p["done"] for p in progress)
    assert progress[-1]["done"] == 8
    # the same table as `playground sweep` on the same scenario, seeds and values
    path = tmp_path / "scn.json"
    path.write_text(json.dumps(RAFT))
    out = tmp_path / "r.jsonl"
    assert main(["sweep", str(path), "--seeds", "0..3", "--set", "config.heartbeat_ms=40,60",
                 "--measure", "commit_latency_ms", "--workers", "1", "--out", str(out)]) == 0
    capsys.readouterr()
    expected = [orjson.loads(x) for x in out.read_bytes().splitlines()]
    got = [f["row"] for f in sorted(rows, key=lambda f: f["index"])]
    assert [{k: v for k, v in r.items() if k != "title"} for r in got] == \
           [{k: v for k, v in r.items() if k != "title"} for r in expected]
    for f in rows:
        assert f["value"] == f["row"]["commit_latency_ms"] and f["seed"] == f["row"]["seed"]
        assert f["point"] == str(f["row"]["config.heartbeat_ms"])
        scn, t, _ = decode(f["share"].split("share=", 1)[1])
        assert scn.seed == f["seed"] and scn.config.heartbeat_ms == f["row"]["config.heartbeat_ms"]
    summary = {s["point"]: s for s in done["summary"]}
    assert set(summary) == {"config.heartbeat_ms=40", "config.heartbeat_ms=60"}
    for p, s in summary.items():
        vals = sorted(f["value"] for f in rows if f"config.heartbeat_ms={f['point']}" == p)
        assert s["count"] == 4 and s["max"] == vals[-1]


def picture(page) -> tuple:
    snap = settle(page)
    return snap["t"], snap["digest"], snap["playing"]


def test_caps_and_bad_input_are_refused_naming_the_field_and_the_session_goes_on(lab_client):
    bad = [
        ({"measure": "commit_latency_ms", "trials": 13}, "trials.trials: at most 12 (PLAYGROUND_MAX_TRIALS)"),
        ({"measure": "nope", "trials": 2}, "trials.measure: 'nope' is not a measure of raft"),
        ({"measure": "commit_latency_ms", "trials": 0}, "trials.trials: at least 1"),
        ({"measure": "commit_latency_ms", "trials": "3"}, "trials.trials: a whole number"),
        ({"measure": "commit_latency_ms", "trials": 2, "param": "config.heartbeat_ms",
          "values": [1, 2, 3, 4, 5]}, "trials.values: 1 to 4 values"),
        ({"measure": "commit_latency_ms", "trials": 2, "param": "config.bogus", "values": [1]},
         "config.bogus"),
        ({"measure": "commit_latency_ms", "trials": 2, "param": "config.heartbeat_ms",
          "values": [-5]}, "config.heartbeat_ms"),
        ({"measure": "commit_latency_ms", "trials": 2, "param": "nodes", "values": [50]},
         "nodes"),
        ({"measure": "commit_latency_ms", "trials": 2, "duration_ms": 10**9},
         "PLAYGROUND_MAX_TRIAL_MS"),
        ({"measure": "commit_latency_ms", "trials": 2, "colour": "red"}, "trials.colour: unknown field"),
    ]
    with lab(lab_client) as (ws, _, page):
        before = picture(page)
        for req, words in bad:
            ws.send_json({"type": "trials", **req})
            f = ws.receive_json()
            assert f["type"] == "error" and words in f["message"], (req, f)
        for req, words in [({"mutation": "nope"}, "search.mutation: raft has no mutation 'nope'"),
                           ({"mutation": "vote_without_log_check", "runs": 21},
                            "search.runs: at most 20 (PLAYGROUND_SEARCH_MAX_RUNS)"),
                           ({"mutation": "vote_without_log_check", "strategy": "dfs"},
                            "search.strategy: 'dfs' is not one of")]:
            ws.send_json({"type": "search", **req})
            f = ws.receive_json()
            assert f["type"] == "error" and words in f["message"], (req, f)
        ws.send_text("not json")
        assert "malformed JSON" in ws.receive_json()["message"]
        ws.send_json({"type": "launch"})
        assert "type: 'launch' is not one of" in ws.receive_json()["message"]
        ws.send_json({"type": "cancel"})
        assert "cancel: nothing is running" in ws.receive_json()["message"]
        # still usable after all that, and the page's session untouched by any of it
        ws.send_json({"type": "trials", "measure": "leader_changes", "trials": 2})
        frames = until_done(ws)
        assert frames[-1]["type"] == "done" and frames[-1]["runs"] == 2
        assert picture(page) == before


def test_attach_needs_the_sessions_secret(lab_client):
    with lab_client.websocket_connect("/ws") as page:
        hello = drain(page, "hello")
        with lab_client.websocket_connect("/ws/lab") as ws:
            ws.send_json({"type": "attach", "session": hello["session"], "secret": "wrong"})
            f = ws.receive_json()
            assert f["fatal"] and "attach.secret" in f["message"]
        with lab_client.websocket_connect("/ws/lab") as ws:
            ws.send_json({"type": "attach", "session": "nosuch", "secret": "x"})
            assert ws.receive_json()["gone"]


@pytest.fixture
def big_client(make_client, tmp_path):
    """Room for 400 runs: an experiment that cannot be over before its cancel is read."""
    d = tmp_path / "big"
    d.mkdir()
    (d / "labraft.json").write_text(json.dumps(RAFT))
    return make_client(scenarios_dir=d, max_trials=100, lab_workers=2)


def test_cancel_stops_an_experiment_before_its_end(big_client):
    with lab(big_client) as (ws, _, _page):
        ws.send_json({"type": "trials", "measure": "commit_latency_ms", "trials": 100,
                      "param": "config.heartbeat_ms", "values": [40, 50, 60, 70]})
        assert ws.receive_json()["type"] == "started"
        ws.send_json({"type": "trials", "measure": "commit_latency_ms", "trials": 2})
        ws.send_json({"type": "cancel"})
        frames = until_done(ws)
        # the second request was refused while the first ran (one experiment per page)
        assert any(f["type"] == "error" and "already running" in f["message"] for f in frames)
        while frames[-1]["type"] != "done":
            frames += until_done(ws)
        done = frames[-1]
        assert done["cancelled"] and done["runs"] < 400
        assert len([f for f in frames if f["type"] == "row"]) == done["runs"]
        # and the socket takes the next one
        ws.send_json({"type": "trials", "measure": "leader_changes", "trials": 1})
        assert until_done(ws)[-1]["runs"] == 1


def test_search_finds_the_mutations_break_and_its_link_opens_at_the_violation(lab_client):
    with lab(lab_client, "labsearch") as (ws, _, _page):
        ws.send_json({"type": "search", "mutation": "vote_without_log_check",
                      "strategy": "random", "runs": 20})
        frames = until_done(ws)
    assert frames[0]["type"] == "started" and frames[0]["strategies"] == ["random"]
    done = frames[-1]
    assert done["type"] == "done" and done["found"], done
    assert done["invariant"] == "Leader Completeness" and done["explored"] <= 20
    scn, t, _ = decode(done["share"])
    assert t == done["t"] and scn.nemesis is None and "vote_without_log_check" in scn.config.mutations
    sim = Simulation(scn)
    sim.run_until(t)
    assert any(v["invariant"] == "Leader Completeness" for v in sim.violations)


def test_explore_finds_a_break_by_delivery_orders_bounded_in_states(lab_client):
    with lab(lab_client, "labpaxos") as (ws, _, _page):
        ws.send_json({"type": "search", "mutation": "learn_without_majority", "runs": 1,
                      "states": 2000, "strategy": "explore"})
        frames = until_done(ws)
    done = frames[-1]
    assert done["found"] and done["strategy"] == "explore" and done["unit"] == "states"
    assert done["explored"] <= 2000 and done["invariant"] == "Learned Is Chosen"
    assert done["tried"] == [{"strategy": "explore", "explored": done["explored"], "unit": "states",
                              "stopped": False}]
    scn, t, _ = decode(done["share"])
    assert [a.do for a in scn.actions[:2]] == ["manual", "set_link"]
    sim = Simulation(scn)
    sim.run_until(t)
    assert any(v["invariant"] == "Learned Is Chosen" for v in sim.violations)


def test_search_not_found_says_what_was_explored(lab_client):
    # without the nemesis' luck: two runs of a mutation random faults rarely line up
    with lab(lab_client) as (ws, _, _page):
        ws.send_json({"type": "search", "mutation": "commit_previous_term", "strategy": "random",
                      "runs": 2})
        done = until_done(ws)[-1]
    assert done["type"] == "done" and done["found"] is False
    assert done["tried"] == [{"strategy": "random", "explored": 2, "unit": "runs", "stopped": False}]


def test_the_page_leaving_stops_its_experiment(big_client):
    pool = big_client.app.state.lab
    with lab(big_client) as (ws, _, _page):
        ws.send_json({"type": "trials", "measure": "commit_latency_ms", "trials": 100,
                      "param": "config.heartbeat_ms", "values": [40, 50, 60, 70]})
        started = ws.receive_json()
        assert started["type"] == "started" and started["total"] == 400
    with lab(big_client) as (ws, _, _page):  # the slots are free for the next page
        ws.send_json({"type": "trials", "measure": "leader_changes", "trials": 1})
        assert until_done(ws)[-1]["runs"] == 1
    # the first page's experiment ended when its socket closed, long before its 50 batches
    assert pool.running == 0 and pool.batches_started < 50
