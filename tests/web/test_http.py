"""Pages, htmx fragments, the trace export/import round trip, settings and the reaper."""

from __future__ import annotations

import base64
import zlib

import orjson
import pytest

from engine.scenario import parse_scenario
from engine.trace import read_trace

from app import share
from app.settings import Settings

from .conftest import drain


def test_page_has_the_hooks_and_accessible_controls(client):
    r = client.get("/?projector=1")
    assert r.status_code == 200
    html = r.text
    assert 'id="canvas"' in html and 'data-time="0"' in html and 'data-digest=""' in html
    assert 'class="projector"' in html
    for name in ("Pause", "Step one event", "Heal all partitions and cuts", "Copy a share link to this moment",
                 "Projector mode", "Keyboard shortcuts", "Export the trace as NDJSON"):
        assert f'aria-label="{name}"' in html
    assert "vendor/htmx.min.js" in html
    assert client.get("/static/vendor/htmx.min.js").status_code == 200
    assert client.get("/static/js/app.js").status_code == 200


def test_unknown_protocol_or_lesson_is_explained_on_the_page(client):
    html = client.get("/?protocol=paxos&scenario=nope").text
    assert "no lesson named &#39;nope&#39;" in html or "no lesson named 'nope'" in html


def test_fragments(client_with_lessons):
    c = client_with_lessons
    frag = c.get("/fragments/lesson", params={"scenario": "demo"}).text
    assert "A demo lesson" in frag and "Try crashing n1." in frag
    assert "A live Raft cluster" in c.get("/fragments/lesson").text
    muts = c.get("/fragments/mutations").text
    assert 'value="commit_previous_term"' in muts and "Figure 8" in muts
    assert "<kbd>Space</kbd>" in c.get("/fragments/help").text
    lessons = c.get("/api/lessons").json()
    assert [l["name"] for l in lessons["lessons"]] == ["demo"]
    assert "broken" in lessons["skipped"] and "bogus" in lessons["skipped"]["broken"]


def test_healthz_counts_sessions(client):
    h = client.get("/healthz").json()
    assert h["ok"] is True and h["sessions"] == 0
    assert h["broker"] == {"kind": "memory", "ok": True, "error": None}
    with client.websocket_connect("/ws") as ws:
        drain(ws, "snapshot")
        assert client.get("/healthz").json()["sessions"] == 1


@pytest.mark.parametrize("data", [
    {"nodes": 3, "seed": 5, "actions": [{"at": 700, "do": "crash", "node": "n1"}]},
    {"protocol": "paxos", "nodes": 3, "seed": 5, "config": {"mode": "multi"},
     "workload": {"kind": "kv", "clients": 1, "rate_per_s": 5, "keys": 2},
     "actions": [{"at": 700, "do": "crash", "node": "n1"}]},
    {"protocol": "paxos", "nodes": 3, "seed": 5, "config": {"proposals": {"n1": "x", "n2": "y"}},
     "actions": [{"at": 700, "do": "crash", "node": "n1"}]},
    {"protocol": "zk", "nodes": 3, "seed": 5, "config": {"clients": 2},
     "actions": [{"at": 700, "do": "crash", "node": "n1"}, {"at": 900, "do": "pause", "node": "c1"}]},
], ids=["raft", "paxos-multi", "paxos-basic", "zk"])
def test_trace_export_then_import_round_trip(client, data):
    sc = parse_scenario(data)
    payload = share.encode(sc, 1500.25)
    r = client.get("/api/trace", params={"share": payload})
    assert r.status_code == 200 and r.headers["content-type"].startswith("application/x-ndjson")
    head, recs = read_trace(r.content.splitlines())
    recs = list(recs)
    assert head["seed"] == 5 and head["scenario"]["actions"][0]["do"] == "crash"
    assert any(x["type"] == "fault" and x["do"] == "crash" for x in recs)
    # The last line says where the run was cut, which is later than the last thing that happened.
    assert recs[-1] == {"type": "end", "t": 1500.25}
    assert max(x["t"] for x in recs[:-1]) < 1500.25
    back = client.post("/api/import", content=r.content).json()
    assert back["records"] == len(recs) - 1 and back["seed"] == 5 and back["nodes"] == 3
    assert back["ended"] is True and back["t"] == 1500.25
    sc2, t2, _ = share.decode(back["share"])
    assert sc2.actions == sc.actions and t2 == 1500.25
    # Loading the import resumes in exactly the state the exported run was in.
    digests = []
    for p in (payload, back["share"]):
        with client.websocket_connect(f"/ws?share={p}") as ws:
            snap = drain(ws, "snapshot")
            digests.append((snap["t"], snap["digest"]))
    assert digests[0] == digests[1] and digests[0][0] == 1500.25


def test_import_of_a_trace_without_an_end_record_resumes_at_its_last_record(client):
    sc = parse_scenario({"nodes": 3, "seed": 5})
    r = client.get("/api/trace", params={"share": share.encode(sc, 900)})
    lines = r.content.splitlines()
    assert orjson.loads(lines[-1])["type"] == "end"
    old = b"\n".join(lines[:-1]) + b"\n"
    last_t = orjson.loads(lines[-2])["t"]
    back = client.post("/api/import", content=old).json()
    assert back["ended"] is False and back["t"] == last_t < 900
    assert share.decode(back["share"])[1] == last_t


@pytest.mark.parametrize("body,expect", [
    (b"", "empty trace"),
    (b"not json\n", "line 1: not JSON"),
    (orjson.dumps({"type": "header", "format": "other/1"}) + b"\n", "format"),
])
def test_import_rejects_bad_traces_with_the_line(client, body, expect):
    r = client.post("/api/import", content=body)
    assert r.status_code == 400 and expect in r.json()["error"]


def test_export_rejects_a_bad_payload(client):
    r = client.get("/api/trace", params={"share": "1.zzzz"})
    assert r.status_code == 400 and "damaged" in r.json()["detail"]


def test_share_codec_is_compact_and_url_safe():
    sc = parse_scenario({"nodes": 5, "seed": 42, "actions": [
        {"at": 100.001, "do": "crash", "node": "n1"},
        {"at": 200.001, "do": "partition", "groups": [["n1", "n2"]]}]})
    p = share.encode(sc, 1234.5, "figure8")
    assert set(p) <= set("0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ-_.")
    assert len(p) < 200
    sc2, t, lesson = share.decode(p)
    assert sc2 == sc and t == 1234.5 and lesson == "figure8"


def test_a_share_link_carries_manual_delivery_and_an_old_shape_still_opens():
    """Message-level actions are ordinary actions: the link replays them exactly. A link made
    before the scenario envelope (link defaults in config) opens the same run."""
    from engine.sim import Simulation

    sim = Simulation(parse_scenario({"nodes": 3, "seed": 8}))
    sim.run_until(300)
    sim.act({"do": "manual", "on": True})
    sim.run_until(340)
    sim.act({"do": "drop", "id": min(sim.waiting)})
    follower = next(n for n in sim.servers if "election" in sim.timers_of(n))
    sim.act({"do": "fire", "node": follower, "timer": "election"})
    sim.run_until(400)
    sc = parse_scenario({"nodes": 3, "seed": 8, "actions": sim.actions})
    sc2, t, _ = share.decode(share.encode(sc, sim.now_ms))
    again = Simulation(sc2)
    again.run_until(t)
    assert again.digest() == sim.digest()
    old = {"s": {"nodes": 3, "config": {"latency_ms_min": 20, "latency_ms_max": 30}}, "t": 5}
    payload = "1." + base64.urlsafe_b64encode(zlib.compress(orjson.dumps(old))).rstrip(b"=").decode()
    sc3, _, _ = share.decode(payload)
    assert (sc3.network.latency_ms_min, sc3.network.latency_ms_max) == (20, 30)


def test_settings_from_env():
    s = Settings.from_env({"PLAYGROUND_MAX_SESSIONS": "12", "PLAYGROUND_DEFAULT_SPEED": "0.5"})
    assert s.max_sessions == 12 and s.default_speed == 0.5
    with pytest.raises(ValueError, match="PLAYGROUND_MAX_SESSIONS"):
        Settings.from_env({"PLAYGROUND_MAX_SESSIONS": "lots"})


def test_reaper_drops_detached_sessions_after_the_grace_period(make_client):
    c = make_client(detached_grace_s=5)
    mgr = c.app.state.sessions
    with c.websocket_connect("/ws") as ws:
        drain(ws, "snapshot")
    (s,) = mgr.sessions.values()
    assert s.detached_at is not None
    assert mgr.reap(now=s.detached_at + 1) == []
    assert mgr.reap(now=s.detached_at + 6) == [s.id]
    assert mgr.sessions == {}


def test_idle_attached_session_is_told_and_closed(make_client):
    c = make_client(idle_timeout_s=10)
    mgr = c.app.state.sessions
    with c.websocket_connect("/ws") as ws:
        drain(ws, "snapshot")
        (s,) = mgr.sessions.values()

        async def reap():  # on the app's loop, as the reaper does
            return mgr.reap(now=s.last_input + 11)

        assert c.portal.call(reap) == [s.id]
        err = drain(ws, "error")
        assert "closed after" in err["message"] and "without input" in err["message"]


def test_trace_export_in_other_tools_formats(client):
    sc = parse_scenario({"nodes": 3, "seed": 5, "workload": {"clients": 2, "rate_per_s": 10, "keys": 2}})
    payload = share.encode(sc, 1200)
    nd = client.get("/api/trace", params={"share": payload})
    _head, recs = read_trace(nd.content.splitlines())
    recs = list(recs)
    r = client.get("/api/trace", params={"share": payload, "format": "shiviz"})
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/plain")
    assert r.headers["content-disposition"].endswith('.log"')
    text = r.text.split("\n")
    assert text[0].startswith("(?<event>") and text[1] == ""
    assert sum(" receive " in line for line in text) == sum(x["type"] == "deliver" for x in recs)
    r = client.get("/api/trace", params={"share": payload, "format": "jepsen"})
    assert r.status_code == 200 and r.text.startswith("{:type :invoke")
    assert len(r.text.splitlines()) == sum(x["type"] == "client" for x in recs)
    r = client.get("/api/trace", params={"share": payload, "format": "porcupine"})
    assert r.status_code == 200 and isinstance(orjson.loads(r.content), list)
    r = client.get("/api/trace", params={"share": payload, "format": "xml"})
    assert r.status_code == 400 and "format: 'xml' is not one of ndjson, jepsen" in r.text


@pytest.mark.parametrize("protocol", ["raft", "paxos", "lb", "zk", "chubby"])
def test_the_help_lists_each_shortcut_once(protocol):
    from app.routes.pages import shortcuts
    keys = [k for k, _ in shortcuts(protocol)]
    assert len(keys) == len(set(keys)), keys
    assert "B" in keys and "PageDown / PageUp" in keys
