"""The WebSocket protocol (docs/ws-protocol.md) through FastAPI's TestClient.

Sessions are paused first wherever a test looks at state, so what it sees does not depend on how
fast the machine is: while paused, simulated time moves only by the test's own actions and steps.
"""

from __future__ import annotations

import json

import pytest

from engine.scenario import parse_scenario
from engine.sim import Simulation

from app import share

from .conftest import drain, last_of, open_paused, reattach


def test_hello_then_snapshot_then_events(client):
    with client.websocket_connect("/ws") as ws:
        hello = ws.receive_json()
        snap = ws.receive_json()
        assert hello["type"] == "hello" and snap["type"] == "snapshot"
        assert hello["seq"] == 1 and snap["seq"] == 2
        assert hello["protocol"] == "raft"
        assert hello["layout"]["nodes"] == ["n1", "n2", "n3", "n4", "n5"]
        assert set(hello["mutations"]) >= {"commit_previous_term"}
        assert any(name == "Election Safety" or name for name, _ in hello["invariants"])
        assert len(snap["digest"]) == 16 and snap["t"] == 0
        assert set(snap["nodes"]) == {"n1", "n2", "n3", "n4", "n5"}
        assert len(snap["net"]["cut"]) == 10 and set(snap["net"]["cut"].values()) == {"none"}
        frames = [ws.receive_json() for _ in range(5)]
        seqs = [f["seq"] for f in frames]
        assert seqs == list(range(3, 8))
        assert all(f["type"] == "events" and "w" in f for f in frames)
        ts = [f["t"] for f in frames]
        assert ts == sorted(ts) and ts[-1] > 0


def test_a_leader_is_elected_and_told_in_words(client):
    with client.websocket_connect("/ws") as ws:
        drain(ws, "snapshot")
        ws.send_json({"type": "control", "do": "new_seed", "seed": 7})
        ws.send_json({"type": "control", "do": "speed", "value": 10})
        words, roles = [], {}
        for _ in range(400):
            f = ws.receive_json()
            if f["type"] == "events":
                words += [w for _, w in f.get("ev", [])]
                for nid, n in f.get("nodes", {}).items():
                    roles[nid] = n["role"]
                if "leader" in roles.values():
                    break
        assert "leader" in roles.values()
        assert any("became leader in term" in w for w in words)


def test_step_processes_exactly_one_event(client):
    with open_paused(client) as (ws, snap):
        ws.send_json({"type": "control", "do": "step"})
        after = drain(ws, "snapshot")
        assert after["events"] == snap["events"] + 1
        assert after["t"] >= snap["t"] and after["playing"] is False
        ws.send_json({"type": "control", "do": "step", "count": 5})
        after5 = drain(ws, "snapshot")
        assert after5["events"] == after["events"] + 5


@pytest.mark.parametrize("action,check", [
    ({"do": "crash", "node": "n3"}, lambda s: s["nodes"]["n3"]["role"] == "down"),
    ({"do": "pause", "node": "n2"}, lambda s: s["nodes"]["n2"]["status"] == "paused"),
    ({"do": "timeout", "node": "n4"}, lambda s: s["nodes"]["n4"]["role"] == "candidate"),
    ({"do": "cut", "from": "n1", "to": "n2", "both": False}, lambda s: s["net"]["cut"]["n1-n2"] == "n1>n2"),
    ({"do": "cut", "from": "n2", "to": "n1", "both": False}, lambda s: s["net"]["cut"]["n1-n2"] == "n2>n1"),
    ({"do": "cut", "from": "n1", "to": "n5"}, lambda s: s["net"]["cut"]["n1-n5"] == "both"),
    ({"do": "partition", "groups": [["n1", "n2"]]},
     lambda s: s["net"]["cut"]["n1-n3"] == "both" and s["net"]["cut"]["n1-n2"] == "none"
     and s["net"]["cut"]["n3-n4"] == "none"),
    ({"do": "set_link", "from": "*", "to": "*", "latency_ms": [40, 80], "loss": 0.25, "duplicate": 0.1},
     lambda s: s["net"]["default"] == {"latency_ms": [40, 80], "loss": 0.25, "duplicate": 0.1}),
    ({"do": "set_link", "from": "n1", "to": "n2", "latency_ms": [100, 100]},
     lambda s: len(s["net"]["links"]) == 2),
    ({"do": "request", "node": "n2", "op": "write", "key": "k1", "value": 3},
     lambda s: any(p[1] == "user" and p[2] == "n2" and p[5] == "w k1=3" for p in s["flight"])),
    ({"do": "request", "node": "n2", "op": "read", "key": "k1"},
     lambda s: any(p[1] == "user" and p[5] == "r k1" for p in s["flight"])),
    ({"do": "request", "node": "n2", "op": "cas", "key": "k1", "value": [1, 2]},
     lambda s: any(p[1] == "user" and p[5].startswith("cas k1") for p in s["flight"])),
])
def test_every_action_takes_effect_at_once_when_paused(client, action, check):
    with open_paused(client) as (ws, snap):
        ws.send_json({"type": "action", "action": action})
        events = drain(ws, "events")
        assert any(w.startswith("You:") for _, w in events.get("ev", [])), events
        after = drain(ws, "snapshot")
        assert check(after), after
        assert after["actions"] == snap["actions"] + 1
        assert after["t"] == pytest.approx(snap["t"] + 0.001)


def test_restart_resume_heal_and_transfer(client):
    with open_paused(client, seed=3, run_ms=2000) as (ws, snap):
        leader = next(n for n, v in snap["nodes"].items() if v["role"] == "leader")
        other = next(n for n in snap["nodes"] if n != leader)
        for a in ({"do": "crash", "node": other}, {"do": "restart", "node": other},
                  {"do": "pause", "node": other}, {"do": "resume", "node": other},
                  {"do": "cut", "from": leader, "to": other}, {"do": "heal"}):
            ws.send_json({"type": "action", "action": a})
            s = drain(ws, "snapshot")
        assert s["nodes"][other]["status"] == "up"
        assert set(s["net"]["cut"].values()) == {"none"}
        ws.send_json({"type": "action", "action": {"do": "transfer", "node": leader, "to": other}})
        drain(ws, "snapshot")
        ws.send_json({"type": "control", "do": "step", "count": 200})
        s = drain(ws, "snapshot")
        assert s["nodes"][other]["role"] == "leader"


def test_healing_one_link_leaves_the_other_cuts_and_the_rest_of_a_partition(client):
    with open_paused(client) as (ws, snap):
        def act(a):
            ws.send_json({"type": "action", "action": a})
            ev = drain(ws, "events")
            return ev, drain(ws, "snapshot")

        act({"do": "cut", "from": "n1", "to": "n2"})
        act({"do": "cut", "from": "n4", "to": "n5"})
        ev, s = act({"do": "heal", "from": "n1", "to": "n2"})
        assert s["net"]["cut"]["n1-n2"] == "none" and s["net"]["cut"]["n4-n5"] == "both"
        assert [w for _, w in ev["ev"]] == ["You: healed the link n1 \u2194 n2"]
        assert ev["net"]["cut"]["n1-n2"] == "none"  # the events frame carries the new picture
        # One direction of a both-ways cut: n5 -> n4 passes again, n4 -> n5 stays blocked.
        ev, s = act({"do": "heal", "from": "n5", "to": "n4", "both": False})
        assert s["net"]["cut"]["n4-n5"] == "n4>n5"
        assert [w for _, w in ev["ev"]] == ["You: healed the link n5 \u2192 n4"]
        # One link of a partition: the partition becomes cuts, and only that link heals.
        act({"do": "partition", "groups": [["n1", "n2"]]})
        _, s = act({"do": "heal", "from": "n1", "to": "n3"})
        assert s["net"]["cut"]["n1-n3"] == "none"
        assert s["net"]["cut"]["n1-n4"] == "both" and s["net"]["cut"]["n2-n3"] == "both"
        assert s["net"]["cut"]["n1-n2"] == "none" and s["net"]["cut"]["n3-n4"] == "none"
        # The clicks replay: a share link to this moment reproduces the cuts exactly.
        ws.send_json({"type": "control", "do": "share"})
        payload = drain(ws, "share")["payload"]
    with client.websocket_connect(f"/ws?share={payload}") as ws2:
        s2 = drain(ws2, "snapshot")
        assert s2["digest"] == s["digest"] and s2["net"]["cut"] == s["net"]["cut"]


def test_healing_one_link_names_bad_input(client):
    with open_paused(client) as (ws, _):
        ws.send_json({"type": "action", "action": {"do": "heal", "from": "n1"}})
        e = drain(ws, "error")
        assert "from" in e["message"] and "to" in e["message"]
        ws.send_json({"type": "action", "action": {"do": "heal", "from": "n1", "to": "n9"}})
        e = drain(ws, "error")
        assert "n9" in e["message"]


def test_rewind_reproduces_the_earlier_state_and_acting_forks(client):
    with open_paused(client, seed=5, run_ms=1500) as (ws, snap):
        ws.send_json({"type": "action", "action": {"do": "crash", "node": "n1"}})
        drain(ws, "snapshot")
        ws.send_json({"type": "control", "do": "seek", "t": 3000})
        later = drain(ws, "snapshot")
        assert later["horizon"] == pytest.approx(3000)
        ws.send_json({"type": "control", "do": "seek", "t": snap["t"]})
        back = drain(ws, "snapshot")
        assert back["digest"] == snap["digest"] and back["t"] == snap["t"]
        ws.send_json({"type": "control", "do": "seek", "t": 3000})
        again = drain(ws, "snapshot")
        assert again["digest"] == later["digest"]  # the same future replays, crash included
        assert again["nodes"]["n1"]["role"] == "down"
        ws.send_json({"type": "control", "do": "seek", "t": 1000})
        drain(ws, "snapshot")
        ws.send_json({"type": "action", "action": {"do": "crash", "node": "n2"}})
        fork = drain(ws, "snapshot")
        assert fork["horizon"] == pytest.approx(1000.001)  # the old future is gone
        ws.send_json({"type": "control", "do": "seek", "t": 3000})
        forked = drain(ws, "snapshot")
        assert forked["nodes"]["n1"]["role"] != "down" and forked["nodes"]["n2"]["role"] == "down"


def test_seeking_forward_tells_the_skipped_stretch_and_rewinding_tells_nothing_twice(client):
    with open_paused(client, seed=5, run_ms=0) as (ws, snap):
        ws.send_json({"type": "control", "do": "seek", "t": 1500})
        told = drain(ws, "events")
        words = [w for _, w in told.get("ev", [])]
        assert any("became leader in term" in w for w in words), words
        assert all(0 < t <= 1500 for t, _ in told["ev"])
        drain(ws, "snapshot")
        ws.send_json({"type": "control", "do": "seek", "t": 800})
        frames = []
        while True:
            f = ws.receive_json()
            frames.append(f)
            if f["type"] == "snapshot":
                break
        assert not any(f.get("ev") for f in frames)  # the page drops its lines after 800 ms itself
        # After the rewind, moving on tells only what is new since 800 ms, in the same words.
        ws.send_json({"type": "control", "do": "seek", "t": 1500})
        again = drain(ws, "events")
        assert [w for t, w in again.get("ev", [])] == [w for t, w in told["ev"] if t > 800]


def test_share_payload_reproduces_the_state_exactly(client):
    with open_paused(client, seed=11, run_ms=800) as (ws, snap):
        for a in ({"do": "crash", "node": "n2"}, {"do": "cut", "from": "n3", "to": "n4", "both": False},
                  {"do": "request", "node": "n1", "op": "write", "key": "k1", "value": 9}):
            ws.send_json({"type": "action", "action": a})
            drain(ws, "snapshot")
        ws.send_json({"type": "control", "do": "step", "count": 37})
        here = drain(ws, "snapshot")
        ws.send_json({"type": "control", "do": "share"})
        payload = drain(ws, "share")["payload"]
    assert len(payload) < 1500
    with client.websocket_connect(f"/ws?share={payload}") as ws2:
        drain(ws2, "hello")
        there = drain(ws2, "snapshot")
    assert there["digest"] == here["digest"] and there["t"] == here["t"]
    assert there["playing"] is False
    # And the engine, replaying the same scenario on its own, agrees.
    sc, t, _ = share.decode(payload)
    sim = Simulation(sc)
    sim.run_until(t)
    assert sim.digest() == here["digest"]


def test_controls_reset_new_seed_configure_speed_check_snapshot(client):
    with open_paused(client, seed=2, run_ms=500) as (ws, snap):
        ws.send_json({"type": "control", "do": "speed", "value": 0.5})
        assert drain(ws, "snapshot")["speed"] == 0.5
        ws.send_json({"type": "control", "do": "reset"})
        hello = drain(ws, "hello")
        s = drain(ws, "snapshot")
        assert s["t"] == 0 and hello["scenario"]["seed"] == 2
        ws.send_json({"type": "control", "do": "new_seed", "seed": 99})
        assert drain(ws, "hello")["scenario"]["seed"] == 99
        ws.send_json({"type": "control", "do": "configure", "nodes": 7, "mutations": ["commit_previous_term"],
                      "options": {"pre_vote": True}, "workload": False})
        hello = drain(ws, "hello")
        assert hello["layout"]["nodes"] == [f"n{i}" for i in range(1, 8)]
        assert hello["active_mutations"] == ["commit_previous_term"]
        assert hello["scenario"]["config"]["pre_vote"] is True and "workload" not in hello["scenario"]
        s = drain(ws, "snapshot")
        assert len(s["net"]["cut"]) == 21
        ws.send_json({"type": "control", "do": "check"})
        s = drain(ws, "snapshot")
        assert {i["name"] for i in s["inv"]} >= {"Linearizability"}
        ws.send_json({"type": "control", "do": "snapshot"})
        assert drain(ws, "snapshot")["type"] == "snapshot"
        ws.send_json({"type": "control", "do": "play"})
        assert drain(ws, "snapshot")["playing"] is True


def test_lessons_load_from_the_scenarios_folder(client_with_lessons):
    with client_with_lessons.websocket_connect("/ws?scenario=demo") as ws:
        hello = drain(ws, "hello")
        assert hello["lesson"]["name"] == "demo" and "Try" in hello["lesson"]["suggest"]
        ws.send_json({"type": "control", "do": "lesson", "name": "demo"})
        assert drain(ws, "hello")["lesson"]["title"] == "A demo lesson"
        ws.send_json({"type": "control", "do": "lesson", "name": "nope"})
        err = drain(ws, "error")
        assert "no lesson 'nope'" in err["message"]


BAD = [
    ("{not json", "malformed JSON"),
    ("[1, 2]", "JSON object"),
    (json.dumps({"do": "play"}), "type: missing"),
    (json.dumps({"type": "launch"}), "unknown frame type 'launch'"),
    (json.dumps({"type": "control"}), "control.do: missing"),
    (json.dumps({"type": "control", "do": "explode"}), "unknown control 'explode'"),
    (json.dumps({"type": "control", "do": "speed", "value": 0}), "control.value"),
    (json.dumps({"type": "control", "do": "speed", "value": 500}), "speed must be between"),
    (json.dumps({"type": "control", "do": "speed", "value": "fast"}), "control.value"),
    (json.dumps({"type": "control", "do": "seek", "t": -5}), "control.t"),
    (json.dumps({"type": "control", "do": "step", "count": 0}), "control.count"),
    (json.dumps({"type": "control", "do": "play", "extra": 1}), "control.extra: unknown field"),
    (json.dumps({"type": "control", "do": "configure", "nodes": 40}), "control.nodes: at most 9"),
    (json.dumps({"type": "control", "do": "configure", "mutations": ["no_such"]}), "unknown mutation 'no_such'"),
    (json.dumps({"type": "control", "do": "load", "share": "garbage"}), "share: not a playground link"),
    (json.dumps({"type": "control", "do": "load", "share": "1.AAAA"}), "share: the payload is damaged"),
    (json.dumps({"type": "action"}), "action.action: Field required"),
    (json.dumps({"type": "action", "action": {"do": "crash", "node": "n9"}}), "unknown node 'n9'"),
    (json.dumps({"type": "action", "action": {"do": "crash"}}), "action.node"),
    (json.dumps({"type": "action", "action": {"do": "explode", "node": "n1"}}), "unknown action 'explode'"),
    (json.dumps({"type": "action", "action": {"node": "n1"}}), "action.do: missing"),
    (json.dumps({"type": "action", "action": {"do": "cut", "from": "n1", "to": "n1"}}), "two different nodes"),
    (json.dumps({"type": "action", "action": {"do": "request", "node": "n1", "op": "write"}}), "integer 'value'"),
    (json.dumps({"type": "action", "action": {"do": "partition", "groups": [["n1"], ["n1", "n2"]]}}), "two groups"),
    (json.dumps({"type": "action", "action": {"do": "set_link", "from": "*", "to": "*", "loss": 2}}), "loss"),
    (json.dumps({"type": "control", "do": "play", "pad": "x" * 70_000}), "frame too large"),
]


@pytest.mark.parametrize("text,expect", BAD, ids=[b[1] for b in BAD])
def test_bad_input_gets_an_error_frame_and_the_session_keeps_running(client, text, expect):
    with open_paused(client) as (ws, snap):
        ws.send_text(text)
        err = drain(ws, "error")
        assert expect in err["message"], err["message"]
        ws.send_json({"type": "control", "do": "step"})
        after = drain(ws, "snapshot")
        assert after["events"] == snap["events"] + 1  # nothing else changed, and it still runs
        assert after["actions"] == snap["actions"]


def test_binary_frames_are_read_too(client):
    with open_paused(client) as (ws, snap):
        ws.send_bytes(json.dumps({"type": "control", "do": "step"}).encode())
        assert drain(ws, "snapshot")["events"] == snap["events"] + 1


def test_bad_url_parameters_fall_back_with_an_error(client):
    with client.websocket_connect("/ws?share=nonsense&speed=abc&protocol=nosuch") as ws:
        frames = [ws.receive_json() for _ in range(5)]
    msgs = " | ".join(f["message"] for f in frames if f["type"] == "error")
    assert "share: not a playground link" in msgs
    assert "speed: 'abc'" in msgs
    assert "'nosuch' is not available yet" in msgs
    assert frames[0]["type"] == "hello" and frames[0]["protocol"] == "raft"


def test_share_over_the_node_cap_is_refused_with_the_field(client):
    big = share.encode(parse_scenario({"nodes": 15, "seed": 1}), 0)
    with client.websocket_connect(f"/ws?share={big}") as ws:
        frames = [ws.receive_json() for _ in range(3)]
    msgs = [f["message"] for f in frames if f["type"] == "error"]
    assert any("scenario.nodes: at most 9 nodes" in m for m in msgs)
    hello = next(f for f in frames if f["type"] == "hello")
    assert len(hello["layout"]["nodes"]) == 5


def test_session_cap_gives_a_clear_message(make_client):
    c = make_client(max_sessions=1)
    with c.websocket_connect("/ws") as ws1:
        drain(ws1, "snapshot")
        with c.websocket_connect("/ws") as ws2:
            f = ws2.receive_json()
            assert f["type"] == "error" and f["fatal"] is True
            assert "the playground is full (1 live sessions" in f["message"]


def test_reconnecting_with_the_session_id_and_secret_reattaches(client):
    with open_paused(client, seed=4, run_ms=300) as (ws, snap):
        sid = snap["session"]
    with reattach(client, snap) as ws2:
        hello = drain(ws2, "hello")
        again = drain(ws2, "snapshot")
    assert hello["session"] == sid and again["digest"] == snap["digest"]
