"""The review's fixes: one runner per session, rate limits, a catch-all for bugs, idle close,
live play bounded like a share link, frames that do not alias engine state."""

from __future__ import annotations

import asyncio
import time

import orjson
import pytest
from starlette.websockets import WebSocketDisconnect

from app.limits import check_replay, decode_share
from app.session import Session, TokenBucket, default_scenario
from app.sessions import SessionManager
from app.settings import Settings

from .conftest import drain, reattach, settle


class _Socket:
    def __init__(self):
        self.frames: list[dict] = []
        self.closed: int | None = None

    async def send_text(self, text: str) -> None:
        self.frames.append(orjson.loads(text))

    async def close(self, code: int = 1000, reason: str = "") -> None:
        self.closed = code


def _settings(tmp_path, **kw) -> Settings:
    return Settings.from_env({}, scenarios_dir=tmp_path, **kw)


def test_takeover_leaves_exactly_one_runner_at_twenty_frames_a_second(tmp_path):
    st = _settings(tmp_path, quiet_frame_every=1)  # a frame every tick, said or not
    m = SessionManager(st, {})
    s = m.create(default_scenario(st, seed=1), None, None)
    a, b = _Socket(), _Socket()

    async def main():
        await m.attach(s, a)
        first = s.task
        await asyncio.sleep(0.2)
        await m.attach(s, b)  # a second tab: the first runner is stopped before the new one starts
        assert first.done()
        await asyncio.sleep(0.05)  # the old socket's last word and close
        b.frames.clear()
        await asyncio.sleep(1.0)
        s.closed = True
        s.kick()
        await s.task

    asyncio.run(main())
    ticks = [f for f in b.frames if f["type"] == "events" and "w" in f]
    assert 15 <= len(ticks) <= 25, len(ticks)  # ~20 frames/s, not 40
    seqs = [f["seq"] for f in b.frames]
    assert seqs == list(range(seqs[0], seqs[0] + len(seqs)))  # one writer: no gaps, no repeats
    assert a.closed == 4001
    assert a.frames[-1]["type"] == "error" and a.frames[-1]["fatal"] is True
    assert "another tab" in a.frames[-1]["message"]


def test_a_second_connection_closes_the_first_with_4001(client):
    with client.websocket_connect("/ws") as ws1:
        hello = drain(ws1, "hello")
        with reattach(client, hello) as ws2:
            drain(ws2, "snapshot")
            err = drain(ws1, "error")
            assert err["fatal"] is True and "another tab" in err["message"]
            with pytest.raises(WebSocketDisconnect) as e:
                for _ in range(1000):
                    ws1.receive_json()
            assert e.value.code == 4001
            assert len(client.app.state.sessions.sessions) == 1


def test_token_bucket_rate_and_burst():
    b = TokenBucket(50, 100)
    assert sum(b.take() for _ in range(150)) == 100
    b.at -= 0.1  # a tenth of a second later: 5 more
    assert sum(b.take() for _ in range(10)) == 5


def test_flooding_frames_are_dropped_with_one_error_and_the_connection_kept(tmp_path):
    st = _settings(tmp_path)
    s = Session("t", st, {}, default_scenario(st, seed=1))
    s.outbox.clear()
    b = TokenBucket(st.ws_rate_per_s, st.ws_burst)
    for _ in range(300):
        s.handle('{"type": "control", "do": "pause"}', b)
    errors = [f for f in s.outbox if f["type"] == "error"]
    assert len(errors) == 1 and "rate" in errors[0]["message"] and not errors[0].get("fatal")
    # the burst's pauses each asked for a snapshot; queued unsent, they collapse into the last one
    assert sum(f["type"] == "snapshot" for f in s.outbox) == 1
    # heavy controls count more: a full bucket takes only burst / heavy_cost resets
    s.outbox.clear()
    b = TokenBucket(st.ws_rate_per_s, st.ws_burst)
    for _ in range(30):
        s.handle('{"type": "control", "do": "reset"}', b)
    assert sum(f["type"] == "hello" for f in s.outbox) <= st.ws_burst // st.ws_heavy_cost
    assert sum(f["type"] == "error" for f in s.outbox) == 1


def test_flood_over_the_socket_is_told_once_and_the_session_goes_on(make_client):
    c = make_client(ws_rate_per_s=20, ws_burst=20)
    with c.websocket_connect("/ws") as ws:
        drain(ws, "snapshot")
        for _ in range(100):
            ws.send_text('{"type": "control", "do": "snapshot"}')
        err = drain(ws, "error")
        assert "rate" in err["message"] and "fatal" not in err
        time.sleep(1.2)  # the bucket refills
        assert settle(ws)["type"] == "snapshot"


def test_repeated_snapshot_requests_collapse(tmp_path):
    st = _settings(tmp_path)
    s = Session("t", st, {}, default_scenario(st, seed=1))

    async def flush():
        s.ws = _Socket()
        await s.flush()

    asyncio.run(flush())  # the first hello and snapshot
    for _ in range(10):
        s.handle('{"type": "control", "do": "snapshot"}')
    assert sum(f["type"] == "snapshot" for f in s.outbox) == 1
    asyncio.run(flush())
    s.handle('{"type": "control", "do": "snapshot"}')  # sent: the next request gets its own
    assert sum(f["type"] == "snapshot" for f in s.outbox) == 1


def test_an_unexpected_exception_is_an_error_frame_and_the_session_keeps_playing(client, monkeypatch):
    def boom(self, count):
        raise RuntimeError("kaboom")

    monkeypatch.setattr(Session, "step", boom)
    with client.websocket_connect("/ws") as ws:
        drain(ws, "snapshot")
        (s,) = client.app.state.sessions.sessions.values()
        ws.send_json({"type": "control", "do": "step", "count": 1})
        err = drain(ws, "error")
        assert err["message"].startswith("internal error handling control.step: RuntimeError")
        assert "fatal" not in err and s.playing
        assert settle(ws)["playing"] is True


def test_idle_timeout_is_fatal_and_closes_with_4000(make_client):
    c = make_client(idle_timeout_s=10)
    mgr = c.app.state.sessions
    with c.websocket_connect("/ws") as ws:
        drain(ws, "snapshot")
        (s,) = mgr.sessions.values()

        async def reap():  # on the app's loop, as the reaper does
            return mgr.reap(now=s.last_input + 11)

        assert c.portal.call(reap) == [s.id]
        err = drain(ws, "error")
        assert err["fatal"] is True and "without input" in err["message"]
        with pytest.raises(WebSocketDisconnect) as e:
            for _ in range(1000):
                ws.receive_json()
        assert e.value.code == 4000


def test_live_play_stops_at_the_replay_operation_limit_and_stays_shareable(tmp_path):
    st = _settings(tmp_path, max_replay_ops=10)  # the live workload: 1 op/s, so 10 s
    s = Session("t", st, {}, default_scenario(st, seed=1))
    s.outbox.clear()
    s.speed = 10.0
    s.sim_ref, s.wall_ref = 0.0, time.monotonic() - 2.0  # 20 s of simulated time are due
    for _ in range(200):
        s.tick(0.0)
        if not s.playing:
            break
        s.wall_ref -= 2.0
    assert s.sim.now_ms == 10_000 and s.playing is False
    errors = [f["message"] for f in s.outbox if f["type"] == "error"]
    assert errors and "longest run that can be shared" in errors[0] and "10 client operations" in errors[0]
    sc, t, _ = decode_share(s.share_payload(), st)
    check_replay(sc, t, st)  # the link it makes is accepted


def test_the_linearizability_check_waits_for_its_interval_and_a_tick_with_budget(tmp_path, monkeypatch):
    st = _settings(tmp_path, lin_check_every_s=3600)
    s = Session("t", st, {}, default_scenario(st, seed=1))
    calls = []
    monkeypatch.setattr(s.lin, "check", lambda budget: calls.append(budget))
    s.speed = 1.0
    for _ in range(5):
        s.sim_ref, s.wall_ref = s.sim.now_ms, time.monotonic() - 0.05
        s.tick(0.0)
    assert len(calls) == 1  # once, then not again within the interval
    st2 = _settings(tmp_path, tick_budget_ms=1e-9)
    s2 = Session("t", st2, {}, default_scenario(st2, seed=1))
    monkeypatch.setattr(s2.lin, "check", lambda budget: calls.append(budget))
    s2.sim_ref, s2.wall_ref = 0.0, time.monotonic() - 0.05
    s2.tick(0.0)
    assert len(calls) == 1  # the tick's budget was spent: the search waits


def test_frames_do_not_alias_engine_state_and_are_stamped_when_queued(tmp_path):
    st = _settings(tmp_path)
    s = Session("t", st, {}, default_scenario(st, seed=1))
    s.sim.run_until(3000)
    s.queue_snapshot()
    snap = s.outbox[-1]
    nid = s.sim.servers[0]
    live_kv = s.sim.nodes[nid].kv
    assert snap["nodes"][nid]["kv"] is not live_kv
    live_kv["zz-test"] = 1
    assert "zz-test" not in snap["nodes"][nid]["kv"]
    s.queue_error("x")
    t_queued = s.outbox[-1]["t"]
    s.sim.run_until(4000)

    async def flush():
        s.ws = _Socket()
        await s.flush()
        return s.ws.frames

    frames = asyncio.run(flush())
    assert frames[-1]["t"] == t_queued == 3000


def test_per_tick_node_summaries_cap_the_store(tmp_path):
    from app.protocols.raft import KV_PER_TICK

    st = _settings(tmp_path)
    s = Session("t", st, {}, default_scenario(st, seed=1))
    v = s.sim.views()[s.sim.servers[0]]
    v["kv"] = {f"k{i:03}": i for i in range(50)}
    small = s.adapter.node(v, False, 0)
    assert len(small["kv"]) == KV_PER_TICK and small["kv_more"] == 50 - KV_PER_TICK
    full = s.adapter.node(v, True, 10)
    assert len(full["kv"]) == 50 and "kv_more" not in full


def _trace(client, t=900):
    from engine.scenario import parse_scenario

    from app import share

    sc = parse_scenario({"nodes": 3, "seed": 5})
    return client.get("/api/trace", params={"share": share.encode(sc, t)}).content.splitlines()


@pytest.mark.parametrize("t,expect", [
    (-1, "t must be a finite time in ms, at least 0"),
    (1e308 * 10, "t must be"),
    ("soon", "t must be a time in ms (a number)"),
    (True, "t must be a time in ms (a number)"),
])
def test_import_rejects_bad_times_naming_the_line(client, t, expect):
    lines = _trace(client)
    bad = orjson.dumps({"type": "fault", "t": t, "do": "crash", "node": "n1"}) if not isinstance(t, float) \
        else b'{"type": "fault", "t": 1e999, "do": "crash"}'
    body = b"\n".join(lines[:2] + [bad] + lines[2:]) + b"\n"
    r = client.post("/api/import", content=body)
    assert r.status_code == 400
    err = r.json()["error"]
    assert ("line 3:" in err and expect in err) or (isinstance(t, float) and "line 3" in err), err


def test_import_caps_the_header_line(make_client):
    c = make_client(max_import_header_bytes=2048)
    lines = _trace(c)
    head = orjson.loads(lines[0])
    head["padding"] = "x" * 4000
    r = c.post("/api/import", content=b"\n".join([orjson.dumps(head)] + lines[1:]))
    assert r.status_code == 400 and "line 1: the header is" in r.json()["error"]


def test_import_refuses_a_trace_too_large_for_a_share_link(make_client):
    from engine.scenario import parse_scenario

    from app import share

    c = make_client(max_share_chars=256)
    acts = [{"at": 100 + i * 37.123, "do": "crash" if i % 2 == 0 else "restart", "node": f"n{i % 3 + 1}"}
            for i in range(60)]
    sc = parse_scenario({"nodes": 3, "seed": 5, "actions": acts})
    from engine.trace import header
    body = orjson.dumps(header(sc)) + b"\n" + orjson.dumps({"type": "end", "t": 5000}) + b"\n"
    assert len(share.encode(sc, 5000)) > 256
    r = c.post("/api/import", content=body)
    assert r.status_code == 400 and "too large to load in the browser" in r.json()["error"]


def test_exports_and_imports_are_capped_with_503(make_client):
    c = make_client(max_concurrent_exports=1, max_concurrent_imports=1)
    slots = c.app.state
    lines = _trace(c)  # creates the export slots, and gives its slot back when done
    assert slots.export_slots.busy == 0
    hold = slots.export_slots.take()
    r = c.get("/api/trace", params={"share": "1.zzzz"})
    assert r.status_code == 503 and "busy" in r.json()["error"]
    hold()
    assert c.get("/api/trace", params={"share": "1.zzzz"}).status_code == 400
    assert slots.export_slots.busy == 0  # a refused payload gives its slot back
    assert c.post("/api/import", content=b"\n".join(lines)).status_code == 200
    hold = slots.import_slots.take()
    r = c.post("/api/import", content=b"\n".join(lines))
    assert r.status_code == 503 and "busy" in r.json()["error"]
    hold()


def test_an_export_holds_the_replay_slot_only_during_a_slice(tmp_path):
    from engine.scenario import parse_scenario

    from app import share
    from app.routes.api import _trace_lines
    from app.session import ReplayGate

    st = _settings(tmp_path, replay_slice_ms=1)
    gate = ReplayGate(1)
    released = []
    sc = parse_scenario({"nodes": 5, "seed": 5, "workload": {"clients": 2, "rate_per_s": 50}})
    _name, body = _trace_lines(share.encode(sc, 20_000), st, gate, lambda: released.append(1))
    seen = []

    async def main():
        async for _chunk in body:  # the reader is suspended here: no slot may be held meanwhile
            seen.append(len(gate.active))

    asyncio.run(main())
    assert len(seen) > 3 and set(seen) == {0}
    assert released  # and its export slot was given back
