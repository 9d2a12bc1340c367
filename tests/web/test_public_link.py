"""A public link must survive its visitors (issue 7): one test per hole found by probing.

Each test here failed on the code before the fix it names."""

from __future__ import annotations

import asyncio
import logging
import time

import pytest
from starlette.websockets import WebSocketDisconnect

from app.headers import OneLine
from app.outbox import Outbox, wire
from app.session import ReplayGate, Session, default_scenario
from app.sessions import Full, SessionManager
from app.share import encode
from engine.scenario import parse_scenario

from .conftest import _settings, drain, reattach


class _Stuck:
    """A socket whose peer never reads: every send waits forever (as uvicorn's does once the
    transport's buffer is full)."""

    def __init__(self):
        self.sent = 0
        self.closed: int | None = None
        self.reason = ""

    async def send_text(self, text):
        self.sent += 1
        await asyncio.Event().wait()

    async def close(self, code=1000, reason=""):
        self.closed, self.reason = code, reason


class _Socket(_Stuck):
    """A socket whose peer reads everything."""

    def __init__(self):
        super().__init__()
        self.frames: list[str] = []

    async def send_text(self, text):
        self.frames.append(text)


def _nine_nodes(st, **cfg):
    return parse_scenario({"nodes": 9, "seed": 3, "duration_ms": 3_600_000, "config": cfg,
                           "workload": {"clients": 1, "rate_per_s": 1, "keys": 2}})


# --- 1. a client that sends but never reads ------------------------------------------------------
def test_a_page_that_never_reads_is_bounded_then_closed_with_4002(tmp_path):
    st = _settings(tmp_path, max_outbox_bytes=256 * 1024)
    m = SessionManager(st, {})
    s = m.create(_nine_nodes(st), None, None)
    s.sim.run_until(5000)  # logs to show: ~9 big node views per snapshot
    ws = _Stuck()

    async def main():
        await m.attach(s, ws)
        await asyncio.sleep(0.05)  # the runner is now stuck in its first send
        assert s.sending_since is not None
        for _ in range(400):  # speed frames: each queues a snapshot (~40 KB here)
            s.handle('{"type": "control", "do": "speed", "value": 0.02}')
        assert sum(f["type"] == "snapshot" for f in s.outbox) <= 1  # they collapsed
        assert s.outbox.bytes < st.max_outbox_bytes and s.ws is ws
        for _ in range(3000):  # share frames do not collapse: the outbox reaches its cap
            s.handle('{"type": "control", "do": "share"}')
            if s.ws is None:
                break
        await asyncio.sleep(0.05)
        return s.task

    task = asyncio.run(main())
    assert s.ws is None and ws.closed == 4002 and "too far behind" in ws.reason
    assert s.outbox.bytes == 0 and task.done()
    assert s.id in m.sessions  # the session stays for the grace period: a reload picks it up


def test_a_send_stuck_past_the_stall_limit_is_closed_by_the_reaper(tmp_path):
    st = _settings(tmp_path, send_stall_s=10)
    m = SessionManager(st, {})
    s = m.create(default_scenario(st, seed=1), None, None)
    ws = _Stuck()

    async def main():
        await m.attach(s, ws)
        await asyncio.sleep(0.05)
        assert m.reap(now=s.sending_since + 5) == [] and s.ws is ws
        m.reap(now=s.sending_since + 11)
        await asyncio.sleep(0.05)

    asyncio.run(main())
    assert ws.closed == 4002 and s.ws is None


def test_snapshots_queued_behind_each_other_keep_their_words_and_clicks():
    box = Outbox()
    box.append({"type": "hello", "t": 0})
    box.append({"type": "snapshot", "t": 0, "nodes": {"n1": "x" * 1000}})
    box.append({"type": "events", "t": 1, "ev": [[1, "n1 crashed"]], "acts": [{"do": "crash"}]})
    box.append({"type": "error", "t": 1, "message": "m"})
    box.append({"type": "progress", "t": 2})
    box.collapse(60, backed_up_only=True)
    kinds = [f["type"] for f in box]
    assert kinds == ["hello", "error", "events"]
    assert box[-1]["ev"] == [[1, "n1 crashed"]] and box[-1]["acts"] == [{"do": "crash"}]
    assert box.bytes == sum(len(b) for _, b in box.take())
    assert wire(b'{"type":"x"}', 7) == '{"seq":7,"type":"x"}'


# --- 2. heavy share links: bounded by their work, and fair ------------------------------------
def test_a_share_link_too_costly_to_replay_stops_early_naming_the_limit(tmp_path):
    st = _settings(tmp_path)
    sc = _nine_nodes(st, heartbeat_ms=5, election_timeout_ms_min=20, election_timeout_ms_max=40,
                     duplicate=1.0)
    s = Session("h", st, {}, sc, until_ms=3_600_000)
    slices = 0
    while s.job is not None and slices < 200:
        s.run_job_slice(0.005)
        slices += 1
    assert s.job is None and slices < 200  # stopped early: not minutes of CPU
    errors = [f["message"] for f in s.outbox if f["type"] == "error"]
    assert errors and "PLAYGROUND_MAX_REPLAY_EVENTS" in errors[-1] and "60:00.000" in errors[0]
    assert s.sim.now_ms < 60_000 and "snapshot" in [f["type"] for f in s.outbox]  # paused where it got


def test_a_light_replay_waits_at_most_one_turn_behind_heavy_ones():
    g = ReplayGate(2, quantum_s=0.25)
    assert g.enter("heavy1") == 0 and g.enter("heavy2") == 0
    assert g.enter("light") == 1  # both slots busy
    waited = 0.0
    while g.enter("light") != 0:
        for h in ("heavy1", "heavy2"):
            if g.enter(h) == 0:
                g.charge(h, 0.005)  # a 5 ms slice each
        waited += 0.005
        assert waited < 1.0
    assert waited <= 0.25 + 1e-9  # one turn, however long the heavy links would run
    # the heavy one that yielded waits behind the fresher job, then gets its turn back
    g.charge("light", 0.001)
    g.leave("light")
    assert g.enter("heavy1") == 0 or g.enter("heavy2") == 0


# --- 3. concurrent takeovers ----------------------------------------------------------------------
def test_simultaneous_takeovers_leave_one_runner_and_close_every_loser_with_4001(tmp_path):
    st = _settings(tmp_path)
    m = SessionManager(st, {})
    s = m.create(default_scenario(st, seed=1), None, None)
    socks = [_Socket() for _ in range(4)]

    async def main():
        await asyncio.gather(*(m.attach(s, w) for w in socks))
        await asyncio.sleep(0.3)
        alive = [t for t in asyncio.all_tasks() if t.get_coro().__qualname__ == "RunnerMixin.run"]
        s.closed = True
        s.kick()
        return alive

    alive = asyncio.run(main())
    assert len(alive) == 1
    winners = [w for w in socks if s.ws is w]
    assert len(winners) == 1
    losers = [w for w in socks if w is not winners[0]]
    assert all(w.closed == 4001 for w in losers)
    assert all(not s.owns(w) for w in losers)


def test_a_connection_that_lost_its_session_can_no_longer_act(client):
    with client.websocket_connect("/ws") as ws1:
        hello = drain(ws1, "hello")
        with reattach(client, hello) as ws2:
            drain(ws2, "snapshot")
            with pytest.raises(WebSocketDisconnect) as e:
                for _ in range(1000):
                    ws1.receive_json()
            assert e.value.code == 4001
        s = client.app.state.sessions.sessions[hello["session"]]
        assert s.sim.actions == []


# --- 4. a session id alone does not drive a session ------------------------------------------------
def test_a_session_id_in_the_url_is_refused(client):
    with client.websocket_connect("/ws") as ws:
        sid = drain(ws, "hello")["session"]
        with client.websocket_connect(f"/ws?session={sid}") as other:
            err = other.receive_json()
            assert err["fatal"] and "secret" in err["message"]
            with pytest.raises(WebSocketDisconnect) as e:
                other.receive_json()
            assert e.value.code == 4003


def test_reattaching_needs_the_secret(client):
    with client.websocket_connect("/ws") as ws:
        hello = drain(ws, "hello")
        assert len(hello["secret"]) >= 20
        with client.websocket_connect("/ws?attach=1") as other:
            other.send_json({"type": "attach", "session": hello["session"], "secret": "guess"})
            err = other.receive_json()
            assert err["fatal"] and err["message"].startswith("attach.secret")
            with pytest.raises(WebSocketDisconnect) as e:
                other.receive_json()
            assert e.value.code == 4003
        ws.send_json({"type": "control", "do": "pause"})
        assert drain(ws, "snapshot")  # the owner was not disturbed


# --- 5. cheap cap exhaustion -------------------------------------------------------------------------
def test_closed_tabs_never_keep_a_newcomer_out(make_client):
    c = make_client(max_sessions=5)
    for _ in range(12):  # connect, then close: each leaves a detached session behind
        with c.websocket_connect("/ws") as ws:
            drain(ws, "hello")
    with c.websocket_connect("/ws") as ws:
        assert drain(ws, "hello")["type"] == "hello"
    assert len(c.app.state.sessions.sessions) <= 5


def test_one_address_may_hold_only_so_many_sessions(tmp_path):
    st = _settings(tmp_path, max_sessions_per_client=2)
    m = SessionManager(st, {})
    a = m.create(default_scenario(st, seed=1), None, None, client="10.0.0.1")
    a.ws = object()  # attached
    b = m.create(default_scenario(st, seed=1), None, None, client="10.0.0.1")
    b.ws = object()
    with pytest.raises(Full, match="PLAYGROUND_MAX_SESSIONS_PER_CLIENT"):
        m.create(default_scenario(st, seed=1), None, None, client="10.0.0.1")
    m.create(default_scenario(st, seed=1), None, None, client="10.0.0.2")  # another address: fine
    b.ws, b.detached_at = None, time.monotonic()  # one tab closed: its slot is reused
    m.create(default_scenario(st, seed=1), None, None, client="10.0.0.1")
    assert b.id not in m.sessions


def test_a_full_server_names_the_limit(make_client):
    c = make_client(max_sessions=1)
    with c.websocket_connect("/ws") as ws:
        drain(ws, "hello")
        with c.websocket_connect("/ws") as other:
            err = other.receive_json()
            assert err["fatal"] and "PLAYGROUND_MAX_SESSIONS" in err["message"]


@pytest.mark.parametrize("origin,allowed", [("http://evil.example", False),
                                            ("http://testserver", True),
                                            ("https://slides.example.org", True)])
def test_the_websocket_checks_the_origin(make_client, origin, allowed):
    c = make_client(allowed_origins="https://slides.example.org")
    with c.websocket_connect("/ws", headers={"origin": origin}) as ws:
        f = ws.receive_json()
        if allowed:
            assert f["type"] == "hello"
        else:
            assert f["fatal"] and f["message"].startswith("origin:")
            with pytest.raises(WebSocketDisconnect) as e:
                ws.receive_json()
            assert e.value.code == 4003


# --- 6. a lost session is said, not silently replaced ---------------------------------------------
def test_reattaching_to_a_session_the_server_no_longer_has_says_it_was_lost(client):
    with client.websocket_connect("/ws?attach=1") as ws:
        ws.send_json({"type": "attach", "session": "restarted", "secret": "x" * 24})
        err = ws.receive_json()
        assert err["fatal"] and err["gone"] is True and "your run was lost" in err["message"]
        with pytest.raises(WebSocketDisconnect) as e:
            ws.receive_json()
        assert e.value.code == 4004
    assert client.app.state.sessions.sessions == {}  # no silent new session at t = 0


def test_frames_carry_what_a_page_needs_to_rebuild_its_share_link(client):
    """The page builds the link itself when the server lost the session (static/js/app.js):
    scenario and branch from `hello`, each click in `events.acts`."""
    with client.websocket_connect("/ws") as ws:
        hello = drain(ws, "hello")
        ws.send_json({"type": "control", "do": "pause"})
        ws.send_json({"type": "action", "action": {"do": "crash", "node": "n2"}})
        ev = drain(ws, "events")
        for _ in range(50):
            if "acts" in ev:
                break
            ev = drain(ws, "events")
        assert "acts" in ev
        snap = drain(ws, "snapshot")
    acts = hello["actions"] + ev["acts"]
    sc = parse_scenario({**hello["scenario"], "actions": [a for a in acts if a["at"] <= snap["t"]]})
    with client.websocket_connect(f"/ws?share={encode(sc, snap['t'])}") as ws2:
        assert drain(ws2, "snapshot")["digest"] == snap["digest"]


# --- 7. security headers -------------------------------------------------------------------------------
def test_pages_carry_security_headers_and_head_answers(client):
    r = client.get("/")
    h = r.headers
    assert "script-src 'self'" in h["content-security-policy"]
    assert "unsafe-inline" not in h["content-security-policy"].split("script-src")[1].split(";")[0]
    assert "frame-ancestors 'none'" in h["content-security-policy"]
    assert h["x-content-type-options"] == "nosniff" and h["referrer-policy"] == "no-referrer"
    assert h["x-frame-options"] == "DENY"
    assert client.head("/").status_code == 200
    assert client.get("/static/js/app.js").headers["x-content-type-options"] == "nosniff"
    assert "<script>" not in r.text and "onsubmit=" not in r.text  # no inline script at all
    assert client.get("/openapi.json").status_code == 404 and client.get("/docs").status_code == 404


def test_embedding_and_api_docs_are_settings(make_client):
    c = make_client(frame_ancestors="'self' https://slides.example.org", api_docs=True)
    h = c.get("/").headers
    assert "frame-ancestors 'self' https://slides.example.org" in h["content-security-policy"]
    assert "x-frame-options" not in h
    assert c.get("/openapi.json").status_code == 200


# --- 8. inbound size in bytes; short echoes --------------------------------------------------------
def test_the_inbound_limit_counts_bytes_and_errors_quote_short(tmp_path):
    st = _settings(tmp_path)
    s = Session("t", st, {}, default_scenario(st, seed=1))
    s.outbox.clear()
    wide = '{"type": "control", "do": "pause", "x": "' + "\u20ac" * 30_000 + '"}'  # 90 KB, 30 K chars
    s.handle(wide)
    s.handle('{"type": "control", "do": "' + "z" * 60_000 + '"}')
    s.handle('{"type": "' + "q" * 60_000 + '"}')
    s.handle('{"type": "control", "do": "pause", "' + "k" * 60_000 + '": 1}')
    errs = [f["message"] for f in s.outbox if f["type"] == "error"]
    assert len(errs) == 4
    assert errs[0].startswith("frame too large") and "65536" in errs[0]
    assert all(len(e) < 300 for e in errs), [len(e) for e in errs]


# --- 9. strict types ------------------------------------------------------------------------------------
@pytest.mark.parametrize("frame,field", [
    ({"do": "speed", "value": True}, "control.value"),
    ({"do": "step", "count": True}, "control.count"),
    ({"do": "seek", "t": False}, "control.t"),
    ({"do": "speed", "value": "1"}, "control.value"),
    ({"do": "configure", "nodes": 3.0}, "control.nodes"),
])
def test_a_boolean_or_a_string_is_not_a_number(tmp_path, frame, field):
    st = _settings(tmp_path)
    s = Session("t", st, {}, default_scenario(st, seed=1))
    s.outbox.clear()
    speed = s.speed
    import orjson
    s.handle(orjson.dumps({"type": "control", **frame}))
    errs = [f["message"] for f in s.outbox if f["type"] == "error"]
    assert errs and errs[0].startswith(field), errs
    assert s.speed == speed and s.sim.now_ms == 0


# --- 10. invalid UTF-8: one line, no traceback ---------------------------------------------------
def test_invalid_utf8_is_logged_in_one_line():
    try:
        b"\xff".decode()
    except UnicodeDecodeError:
        import sys
        exc = sys.exc_info()
    rec = logging.LogRecord("uvicorn.error", logging.ERROR, __file__, 1,
                            "Invalid UTF-8 sequence received from client.", None, exc)
    assert OneLine().filter(rec) is True
    assert rec.exc_info is None and rec.levelno == logging.WARNING
    assert "\n" not in logging.Formatter().format(rec)


# --- 11. nothing depends on how long the machine has been up -------------------------------------
def test_the_first_linearizability_check_does_not_depend_on_uptime(tmp_path, monkeypatch):
    import app.session.runner as session_mod

    clock = [5.0]  # a machine booted five seconds ago
    monkeypatch.setattr(session_mod.time, "monotonic", lambda: clock[0])
    st = _settings(tmp_path, lin_check_every_s=3600)
    s = Session("t", st, {}, default_scenario(st, seed=1))
    calls = []
    monkeypatch.setattr(s.lin, "check", lambda budget: calls.append(budget))
    s.speed = 1.0
    for _ in range(3):
        s.sim_ref, s.wall_ref = s.sim.now_ms, clock[0] - 0.05
        s.tick(0.0)
        clock[0] += 0.05
    assert len(calls) == 1


# --- found by a review of the fixes above ---------------------------------------------------------
def test_a_replay_stuck_on_its_socket_gives_its_slot_to_others(tmp_path):
    st = _settings(tmp_path, max_concurrent_replays=1)
    m = SessionManager(st, {})
    heavy = m.create(_nine_nodes(st), None, None, until_ms=3_600_000)
    light = m.create(default_scenario(st, seed=2), None, None, until_ms=900)
    stuck, fine = _Stuck(), _Socket()

    async def main():
        await m.attach(heavy, stuck)
        await asyncio.sleep(0.2)  # its runner did a slice, then got stuck sending
        assert heavy.sending_since is not None and heavy.id not in m.replay_gate.active
        await m.attach(light, fine)
        for _ in range(100):
            await asyncio.sleep(0.02)
            if light.job is None:
                break
        light.closed = heavy.closed = True
        light.kick(), heavy.kick()
        return light.job

    assert asyncio.run(main()) is None  # the light link finished its replay meanwhile


def test_a_takeover_keeps_the_cpu_a_replay_has_had():
    g = ReplayGate(1)
    assert g.enter("a") == 0
    g.charge("a", 0.3)
    g.release("a")  # the runner stopped (a detach or a takeover)
    assert g.used["a"] == 0.3
    assert g.enter("b") == 0  # a fresh job goes first
    g.leave("a")  # only a dropped session is forgotten
    assert "a" not in g.used


def test_a_waiter_that_stopped_asking_does_not_block_a_free_slot(monkeypatch):
    import app.session.replay as session_mod  # the gate lives here since the session split

    now = [100.0]
    monkeypatch.setattr(session_mod.time, "monotonic", lambda: now[0])
    g = ReplayGate(1)
    assert g.enter("busy") == 0
    assert g.enter("gone") == 1  # waits, then its page goes away
    g.release("busy")
    now[0] += 5
    assert g.enter("next") == 0 and "gone" not in g.waiting


def test_live_play_stops_before_a_share_link_would_be_refused(tmp_path):
    st = _settings(tmp_path, max_replay_events=5000)
    s = Session("t", st, {}, default_scenario(st, seed=1))
    s.outbox.clear()
    s.speed = 10.0
    for _ in range(400):
        s.sim_ref, s.wall_ref = s.sim.now_ms, time.monotonic() - 0.5
        s.tick(0.0)
        if not s.playing:
            break
    assert not s.playing and s.sim.events < 5000
    errors = [f["message"] for f in s.outbox if f["type"] == "error"]
    assert errors and "PLAYGROUND_MAX_REPLAY_EVENTS" in errors[-1]
    from app.limits import decode_share
    sc, t, _ = decode_share(s.share_payload(), st)
    again = Session("u", st, {}, sc, until_ms=t)
    for _ in range(1000):
        if again.job is None:
            break
        again.run_job_slice(0.005)
    assert not [f for f in again.outbox if f["type"] == "error"]
    assert again.sim.digest() == s.sim.digest()


def test_a_reattach_starts_with_hello_not_the_last_page_s_leftovers(tmp_path):
    st = _settings(tmp_path)
    m = SessionManager(st, {})
    s = m.create(default_scenario(st, seed=1), None, None)
    s.queue_error("for the old page")
    ws = _Socket()

    async def main():
        await m.attach(s, ws, greet=True)
        await asyncio.sleep(0.1)
        s.closed = True
        s.kick()

    asyncio.run(main())
    import orjson
    kinds = [orjson.loads(f)["type"] for f in ws.frames]
    assert kinds[0] == "hello" and "error" not in kinds[:2]


@pytest.mark.parametrize("origin,host,ok", [
    ("https://example.org", "example.org:443", True),
    ("http://example.org:80", "example.org", True),
    ("https://example.org", "example.org:8443", False),
    ("http://[::1]:8000", "[::1]:8000", True),
    ("null", "example.org", False),
    ("https://Slides.Example.org", "other", True),
])
def test_origin_matching_normalises_ports_and_case(tmp_path, origin, host, ok):
    from app.routes.ws import origin_allowed

    st = _settings(tmp_path, allowed_origins="https://SLIDES.example.org")
    assert origin_allowed(origin, host, st) is ok
