"""Classroom rooms on one worker (the in-process broker): follow, read-only, control, caps, copies."""

from __future__ import annotations

import asyncio
import time

import orjson
import pytest
from starlette.websockets import WebSocketDisconnect

from app import share
from app.broker import MemoryBroker
from app.rooms import ALPHABET, Audience, RoomService, Viewer, normalize_code
from app.settings import Settings
from engine.scenario import parse_scenario

from .conftest import drain, open_paused, settle


def _open_room(p) -> str:
    p.send_json({"type": "control", "do": "room_open"})
    room = drain(p, "room")
    assert room["path"] == f"/room/{room['code']}" and room["viewers"] == 0
    return room["code"]


def _until(ws, pred, limit=2000):
    for _ in range(limit):
        f = ws.receive_json()
        if pred(f):
            return f
    raise AssertionError("no such frame")


def test_room_codes_are_typeable():
    assert not set("0O1IL") & set(ALPHABET)
    assert normalize_code(" abc-def ") == "ABCDEF"
    assert normalize_code("ABCDE0") is None and normalize_code("ABC") is None


def test_a_viewer_sees_the_presenters_session_frame_for_frame(client):
    with open_paused(client, seed=3, run_ms=500) as (p, snap):
        code = _open_room(p)
        with client.websocket_connect(f"/ws?room={code}") as v:
            hello = drain(v, "hello")
            assert "secret" not in hello and "session" not in hello
            assert hello["room"] == {"code": code} and hello["scenario"]["seed"] == 3
            you = drain(v, "room")
            assert you["you"] and you["granted"] is False
            first = drain(v, "snapshot")
            assert (first["t"], first["digest"]) == (500, snap["digest"])
            assert _until(p, lambda f: f["type"] == "room" and f["viewers"] == 1)
            p.send_json({"type": "action", "action": {"do": "crash", "node": "n1"}})
            ev = _until(v, lambda f: f["type"] == "events" and f.get("acts"))
            assert ev["acts"][0]["do"] == "crash"
            clicked = lambda f: f["type"] == "snapshot" and f["actions"] == 1  # noqa: E731
            mine, theirs = _until(p, clicked), _until(v, clicked)
            assert theirs["digest"] == mine["digest"] and theirs["t"] == mine["t"]
        # The viewer left: the presenter's count says so.
        assert _until(p, lambda f: f["type"] == "room" and f["viewers"] == 0)


def test_a_viewers_clicks_do_nothing_and_are_refused_once(client):
    with open_paused(client, seed=3, run_ms=300) as (p, snap):
        code = _open_room(p)
        with client.websocket_connect(f"/ws?room={code}") as v:
            drain(v, "snapshot")
            v.send_json({"type": "action", "action": {"do": "crash", "node": "n2"}})
            err = drain(v, "error")
            assert err["readonly"] is True and code in err["message"]
            v.send_json({"type": "control", "do": "reset"})
            v.send_json({"type": "action", "action": {"do": "crash", "node": "n3"}})
            v.send_json({"type": "control", "do": "snapshot"})  # allowed: a fresh picture
            frames = []
            while not frames or frames[-1]["type"] != "snapshot":
                frames.append(v.receive_json())
            assert not [f for f in frames if f["type"] == "error"]  # said once
            assert frames[-1]["digest"] == snap["digest"] and frames[-1]["actions"] == 0
        assert settle(p)["digest"] == snap["digest"]


def test_the_presenter_hands_control_to_one_viewer_and_takes_it_back(client):
    with open_paused(client, seed=3, run_ms=300) as (p, _):
        code = _open_room(p)
        with client.websocket_connect(f"/ws?room={code}") as v:
            vid = drain(v, "room")["you"]
            drain(v, "snapshot")
            p.send_json({"type": "control", "do": "room_grant", "viewer": "nobody"})
            assert "has not asked for control" in drain(p, "error")["message"]
            v.send_json({"type": "control", "do": "room_hand"})
            assert _until(p, lambda f: f["type"] == "room" and f["hands"] == [vid])
            p.send_json({"type": "control", "do": "room_grant", "viewer": vid})
            assert _until(v, lambda f: f["type"] == "room" and f.get("granted") is True)
            v.send_json({"type": "action", "action": {"do": "crash", "node": "n2"}})
            ev = _until(p, lambda f: f["type"] == "events" and f.get("acts"))
            assert ev["acts"][0]["node"] == "n2"  # the viewer's click, applied to the room
            room = client.app.state.rooms.hosted[code]
            old = room.control[1]
            p.send_json({"type": "control", "do": "room_revoke"})
            assert _until(v, lambda f: f["type"] == "room" and f.get("granted") is False)
            # Input still carrying the revoked secret (in flight when it was revoked) is refused.
            client.portal.call(room.on_input, orjson.dumps(
                {"k": "input", "v": vid, "s": old,
                 "d": '{"type": "action", "action": {"do": "crash", "node": "n4"}}'}))
            v.send_json({"type": "action", "action": {"do": "crash", "node": "n3"}})
            assert drain(v, "error")["readonly"] is True
            snap = settle(p)
            assert snap["actions"] == 1 and snap["nodes"]["n4"]["status"] == "up"


def test_take_a_copy_from_what_the_viewer_saw_then_it_diverges(client):
    with open_paused(client, seed=5, run_ms=400) as (p, _):
        code = _open_room(p)
        p.send_json({"type": "action", "action": {"do": "crash", "node": "n1"}})
        presenter = drain(p, "snapshot")
        with client.websocket_connect(f"/ws?room={code}") as v:
            hello = drain(v, "hello")
            seen = drain(v, "snapshot")
        assert seen["digest"] == presenter["digest"]
        # The page's "Take a copy": a share link from the frames it has (hello.scenario, its actions).
        sc = parse_scenario({**hello["scenario"], "actions": hello["actions"]})
        with client.websocket_connect(f"/ws?share={share.encode(sc, seen['t'])}") as c:
            copy = drain(c, "snapshot")
            assert copy["digest"] == presenter["digest"]
            c.send_json({"type": "action", "action": {"do": "crash", "node": "n2"}})
            assert drain(c, "snapshot")["digest"] != presenter["digest"]
        assert settle(p)["digest"] == presenter["digest"]


def test_no_such_room_and_a_bad_code_are_refused(client):
    with client.websocket_connect("/ws?room=ABCDEF") as v:
        f = v.receive_json()
        assert f["gone"] is True and "no room ABCDEF" in f["message"]
        with pytest.raises(WebSocketDisconnect) as e:
            v.receive_json()
        assert e.value.code == 4004
    with client.websocket_connect("/ws?room=0000") as v:
        assert "not a room code" in v.receive_json()["message"]


def test_viewer_cap_and_rooms_per_address_name_their_settings(make_client):
    c = make_client(max_room_viewers=1, max_rooms_per_client=1)
    with open_paused(c) as (p, _):
        code = _open_room(p)
        with c.websocket_connect(f"/ws?room={code}") as v1:
            drain(v1, "snapshot")
            with c.websocket_connect(f"/ws?room={code}") as v2:
                f = v2.receive_json()
                assert f["fatal"] and "PLAYGROUND_MAX_ROOM_VIEWERS = 1" in f["message"]
        with c.websocket_connect("/ws") as q:
            drain(q, "snapshot")
            q.send_json({"type": "control", "do": "room_open"})
            assert "PLAYGROUND_MAX_ROOMS_PER_CLIENT = 1" in drain(q, "error")["message"]


def test_the_audience_page_and_its_qr_code(client):
    with open_paused(client) as (p, _):
        code = _open_room(p)
        page = client.get(f"/room/{code}")
        assert page.status_code == 200 and f'data-room="{code}"' in page.text
        assert client.get(f"/room/{code.lower()}", follow_redirects=False).status_code == 303
        assert client.get("/room", params={"code": code.lower()},
                          follow_redirects=False).headers["location"] == f"/room/{code}"
        qr = client.get(f"/room/{code}/qr.svg")
        assert qr.headers["content-type"].startswith("image/svg+xml") and b"<svg" in qr.content
        p.send_json({"type": "control", "do": "room_close"})
        assert _until(p, lambda f: f["type"] == "room" and f.get("closed"))
        with client.websocket_connect(f"/ws?room={code}") as v:
            assert v.receive_json()["gone"] is True


def test_a_viewer_that_does_not_keep_up_is_dropped_to_the_latest_snapshot():
    async def main():
        st = Settings.from_env({}, room_viewer_outbox_bytes=65536)
        service = RoomService(st, MemoryBroker(), manager=None)
        a = Audience(service, "ABCDEF")
        v = Viewer(a, ws=None, client=None)
        a.viewers[v.id] = v

        def frame(kind, size=0, **kw):
            f = {"type": kind, "t": 1, "pad": "x" * size, **kw}
            return f, orjson.dumps(f)

        v.push(*frame("hello"))
        v.push(*frame("events"))
        assert len(v.outbox) == 1  # nothing before the first snapshot is of use
        v.push(*frame("snapshot", 100))
        for _ in range(200):  # the page reads nothing
            v.push(*frame("events", 10_000, ev=[[1, "words"]]))
            assert v.outbox.bytes <= st.room_viewer_outbox_bytes + 10_100
        assert v.dropped >= 1 and [f["type"] for f in v.outbox][0] == "hello"
        v.push(*frame("snapshot", 100))
        assert v.synced and v.outbox[-1]["type"] == "snapshot"
        await asyncio.sleep(0)

    asyncio.run(main())


def test_a_viewer_that_reads_nothing_is_closed_after_the_send_stall():
    async def main():
        st = Settings.from_env({}, send_stall_s=0.05)
        service = RoomService(st, MemoryBroker(), manager=None)
        a = Audience(service, "ABCDEF")

        class Stuck:  # a peer that never reads: every send waits forever
            closed = None

            async def send_text(self, text):
                await asyncio.Event().wait()

            async def close(self, code, reason=""):
                self.closed = code

        v = Viewer(a, ws=Stuck(), client=None)
        a.viewers[v.id] = v
        v.task = asyncio.ensure_future(v.run())
        v.say({"type": "room"})
        await asyncio.sleep(0.01)
        assert a.close_stalled(time.monotonic()) == []
        await asyncio.sleep(0.1)
        assert a.close_stalled(time.monotonic()) == [v]
        await asyncio.sleep(0.05)
        assert v.ws.closed == 4002 and v.task.cancelled()

    asyncio.run(main())


def test_joining_rooms_is_rate_limited_per_address(make_client):
    c = make_client(new_sessions_per_client_burst=2, new_sessions_per_client_per_s=0.01)
    for expect in ("no room", "no room", "PLAYGROUND_NEW_SESSIONS_PER_CLIENT_BURST"):
        with c.websocket_connect("/ws?room=ABCDEF") as v:
            assert expect in v.receive_json()["message"]
