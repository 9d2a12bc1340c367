"""A private session's cheap write path (app/session/runner.py `flush`, app/transport.py
`raw_frames`): under uvicorn each frame is one write of its header and bytes, with the same `seq`
and slow-page rules as the ASGI path."""

from __future__ import annotations

import asyncio

import orjson
from websockets.asyncio.client import connect

from app.main import create_app
from app.session import default_scenario
from app.sessions import SessionManager

from .conftest import _settings
from .test_room_fanout import FakeRaw
from ..serving import uvicorn_on_this_loop


class _Held:
    """The ASGI side of a connection whose frames go the raw way (`send_text` must not be used)."""

    def __init__(self):
        self.closed: int | None = None
        self.reason = ""

    async def send_text(self, text):  # pragma: no cover - the test fails if it is called
        raise AssertionError("a raw connection's frame went through send_text")

    async def close(self, code=1000, reason=""):
        self.closed, self.reason = code, reason


def test_a_private_session_under_uvicorn_takes_the_raw_path_in_order(tmp_path):
    async def main():
        app = create_app(_settings(tmp_path))
        async with uvicorn_on_this_loop(app) as port:
            ws = await connect(f"ws://127.0.0.1:{port}/ws", compression=None)
            got = [orjson.loads(await ws.recv()) for _ in range(30)]
            assert got[0]["type"] == "hello" and [f["seq"] for f in got] == list(range(1, 31))
            (s,) = app.state.sessions.sessions.values()
            assert s._raw_cache is not None and s._raw_cache[1] is not None  # the cheap path
            await ws.send('{"type": "control", "do": "pause"}')
            for _ in range(400):  # the pause's snapshot comes back on the same path, in order
                f = orjson.loads(await ws.recv())
                assert f["seq"] == got[-1]["seq"] + 1
                got.append(f)
                if f["type"] == "snapshot":
                    break
            assert got[-1]["type"] == "snapshot" and got[-1]["playing"] is False
            await ws.close()

    asyncio.run(main())


def test_a_raw_page_that_stops_reading_waits_then_is_closed_by_the_reaper(tmp_path):
    st = _settings(tmp_path, send_stall_s=10)
    m = SessionManager(st, {})
    s = m.create(default_scenario(st, seed=1), None, None)
    ws, raw = _Held(), FakeRaw()
    s._raw_cache = (ws, raw)

    async def main():
        await m.attach(s, ws)
        for _ in range(200):
            await asyncio.sleep(0.01)
            if raw.sent:
                break
        assert raw.sent[0]["type"] == "hello" and raw.sent[0]["seq"] == 1
        raw.writable.clear()  # the socket's buffer is over its high-water mark
        s.handle('{"type": "control", "do": "share"}')
        for _ in range(200):
            await asyncio.sleep(0.01)
            if s.sending_since is not None:
                break
        n = len(raw.sent)
        assert s.sending_since is not None  # waiting, and seen to wait
        await asyncio.sleep(0.05)
        assert len(raw.sent) == n  # nothing written while it is full
        assert m.reap(now=s.sending_since + 5) == [] and s.ws is ws
        m.reap(now=s.sending_since + 11)
        await asyncio.sleep(0.05)
        seqs = [f["seq"] for f in raw.sent]
        assert seqs == list(range(1, len(seqs) + 1))

    asyncio.run(main())
    assert ws.closed == 4002 and "too far behind" in ws.reason and s.ws is None
