"""The app side of the protocol seam: what the frames carry for any protocol (topology, extras,
deltas, timers, manual delivery), the adapter's switches, and checkers told apart by flags."""

from __future__ import annotations

import re
from pathlib import Path

from app.protocols import ADAPTERS, available, get_adapter
from app.session import Session, default_scenario

from .conftest import _settings, drain, open_paused, settle

ROOT = Path(__file__).resolve().parents[2]


def test_hello_sends_the_topology_and_the_adapters_extras(client):
    with client.websocket_connect("/ws") as ws:
        hello = drain(ws, "hello")
    assert hello["topology"]["nodes"][0] == ["n1", "server"]
    assert len(hello["topology"]["links"]) == 10  # five servers, a full mesh
    assert hello["extras"] == {"timeout_ms": [150, 300]}
    assert "timeout_ms" not in hello and hello["title"] == "Raft"
    assert set(hello["options"]) == {"pre_vote", "check_quorum", "overlap_vote_write",
                                     "leader_parallel_write"}


def test_manual_delivery_is_in_the_frames_and_replays_from_a_share_link(client):
    with open_paused(client, seed=4, run_ms=300) as (ws, snap):
        assert snap["manual"] is False and snap["waiting"] == []
        ws.send_json({"type": "action", "action": {"do": "manual", "on": True}})
        ev = drain(ws, "events")
        assert ev["manual"] is True and ev["waiting"] == []
        drain(ws, "snapshot")  # (paused: an action is followed by a snapshot)
        ws.send_json({"type": "control", "do": "step", "count": 40})
        snap = drain(ws, "snapshot")
        waiting = snap["waiting"]
        assert snap["manual"] is True and len(waiting) >= 2
        flying = {m[0] for m in snap["flight"]}
        assert set(waiting) <= flying  # a waiting message stays on its link
        ws.send_json({"type": "action", "action": {"do": "deliver", "id": waiting[0]}})
        ev = drain(ws, "events")
        assert waiting[0] not in ev["waiting"] and [waiting[0], None] in [d[:2] for d in ev["del"]]
        drain(ws, "snapshot")
        ws.send_json({"type": "action", "action": {"do": "drop", "id": waiting[1]}})
        ev = drain(ws, "events")
        assert [waiting[1], "user", ev["t"]] in ev["del"]  # dropped now, by the user
        drain(ws, "snapshot")
        ws.send_json({"type": "action", "action": {"do": "drop", "id": waiting[1]}})
        assert drain(ws, "error")["message"].startswith(f"action.id: message {waiting[1]} is not waiting")
        snap = settle(ws)
        ws.send_json({"type": "control", "do": "share"})
        payload = drain(ws, "share")["payload"]
    with client.websocket_connect(f"/ws?share={payload}") as ws2:
        again = drain(ws2, "snapshot")
    assert (again["t"], again["digest"], again["waiting"]) == (snap["t"], snap["digest"], snap["waiting"])


def test_nodes_carry_their_timers_and_a_timer_fires_as_an_action(client):
    with open_paused(client, seed=2, run_ms=50) as (ws, snap):
        follower = next(n for n, v in snap["nodes"].items() if v["role"] == "follower")
        assert "election" in snap["nodes"][follower]["timers"]
        ws.send_json({"type": "action", "action": {"do": "fire", "node": follower, "timer": "election"}})
        ev = drain(ws, "events")
        assert ev["acts"][0]["do"] == "fire"
        assert ev["nodes"][follower]["role"] == "candidate"
        assert any(f"You: fired {follower}'s election timer" in w for _, w in ev["ev"])


def test_log_changes_travel_as_deltas(client):
    with open_paused(client, seed=1, run_ms=600) as (ws, snap):
        leader = next(n for n, v in snap["nodes"].items() if v["role"] == "leader")
        ws.send_json({"type": "action", "action": {"do": "request", "node": leader, "op": "write",
                                                   "key": "k1", "value": 7}})
        drain(ws, "snapshot")
        ws.send_json({"type": "control", "do": "step", "count": 30})
        deltas = []
        for _ in range(50):
            f = ws.receive_json()
            deltas += (f.get("deltas") or {}).get("log", [])
            if f["type"] == "snapshot":
                break
        assert "logd" not in f
        assert any(e[1] == "w k1=7" for _, _, entries in deltas for e in entries)


def test_configure_options_are_the_adapters_and_bad_ones_name_the_field(client):
    with open_paused(client) as (ws, snap):
        ws.send_json({"type": "control", "do": "configure", "options": {"pre_vot": True}})
        msg = drain(ws, "error")["message"]
        assert msg.startswith("control.options.pre_vot: unknown option for raft (known: check_quorum, leader_parallel_write, overlap_vote_write, pre_vote)")
        ws.send_json({"type": "control", "do": "configure", "options": {"pre_vote": 1}})
        assert drain(ws, "error")["message"] == "control.options.pre_vote: must be true or false"
        ws.send_json({"type": "control", "do": "configure", "pre_vote": True})
        assert drain(ws, "error")["message"].startswith("control.pre_vote: unknown field")
        ws.send_json({"type": "control", "do": "configure", "options": {"check_quorum": True}})
        assert drain(ws, "hello")["scenario"]["config"]["check_quorum"] is True


def test_checkers_are_told_apart_by_flags_not_names(tmp_path):
    st = _settings(tmp_path)
    s = Session("x", st, {}, default_scenario(st, seed=1))
    assert s.lin is not None and s.lin.search
    inv = s._invariants()
    assert [i["name"] for i in inv if i.get("search")] == ["Linearizability"]
    assert "mirror" not in [i["name"] for i in inv]


def test_the_limits_read_timers_through_the_adapter(client):
    from app import share
    from engine.scenario import parse_scenario

    fast = share.encode(parse_scenario({"nodes": 3, "seed": 1, "config": {"heartbeat_ms": 1,
                                        "election_timeout_ms_min": 150}}), 0)
    with client.websocket_connect(f"/ws?share={fast}") as ws:
        frames = [ws.receive_json() for _ in range(3)]
    assert any("scenario.config.heartbeat_ms: at least" in f.get("message", "") for f in frames)
    assert set(get_adapter("raft").timers(parse_scenario({}).config)) == {
        "heartbeat_ms", "election_timeout_ms_min", "client_timeout_ms"}


def test_every_available_protocol_has_an_adapter_and_a_page_module():
    index = (ROOT / "static/js/protocols/index.js").read_text()
    registered = set(re.findall(r"import \* as (\w+) from", index))
    assert set(available()) <= set(ADAPTERS) and set(available()) <= registered


def _cites_an_example(line: str) -> bool:
    # Prose that names a protocol as an example ("a Raft term's hue, say"), and the benchmark
    # tool's description of the Raft run it measures.
    return "say)" in line or "e.g." in line or "AppendEntries and their replies" in line


def test_generic_files_name_no_protocol_words():
    """The seam: generic app files and the page's generic code carry no Raft words (comments
    citing an example aside, and the registry line)."""
    words = re.compile(r"\b(terms?|leaders?|leadership|votes?|voted|elections?|raft)\b|appendentries|"
                       r"\bappend-reply\b", re.I)
    files = [*ROOT.glob("app/*.py"), *ROOT.glob("app/routes/*.py"), *ROOT.glob("app/session/*.py"),
             ROOT / "static/js/app.js", ROOT / "static/js/canvas.js", ROOT / "templates/index.html"]
    bad = []
    for f in files:
        for i, line in enumerate(f.read_text().splitlines(), 1):
            code = re.split(r"\s#\s|^\s*#|//", line)[0]
            if words.search(code) and not _cites_an_example(code):
                bad.append(f"{f.relative_to(ROOT)}:{i}: {line.strip()}")
    assert not bad, "\n".join(bad)


def test_generic_files_name_no_load_balancing_words():
    """The same seam for the load-balancing lab: the session, the routes, the canvas and the
    page's generic code know no balancer, backend or algorithm (the benchmark tools, which name
    the runs they measure, aside)."""
    words = re.compile(r"\b(balancers?|backends?|round.robin|ejected|least.connections|lb)\b", re.I)
    tools = {"cli.py", "webbench.py", "fpsbench.py", "longbench.py"}
    files = [*ROOT.glob("app/*.py"), *ROOT.glob("app/routes/*.py"), *ROOT.glob("app/session/*.py"),
             ROOT / "static/js/app.js", ROOT / "static/js/canvas.js", ROOT / "templates/index.html"]
    bad = []
    for f in files:
        if f.name in tools:
            continue
        for i, line in enumerate(f.read_text().splitlines(), 1):
            code = re.split(r"\s#\s|^\s*#|//", line)[0]
            if words.search(code):
                bad.append(f"{f.relative_to(ROOT)}:{i}: {line.strip()}")
    assert not bad, "\n".join(bad)
