"""A room's cheap write path (app/transport.py `raw_frames`, app/rooms.py `Viewer`): frames framed
here and written straight to each follower's socket under uvicorn, with the same bytes, seq and
slow-viewer rules as the ASGI path."""

from __future__ import annotations

import asyncio
import time

import orjson
import pytest
from websockets.asyncio.client import connect
from websockets.frames import Frame, Opcode
from websockets.streams import StreamReader

from app.broker import MemoryBroker
from app.main import create_app
from app.outbox import wire, wire_bytes
from app.roombench import open_room
from app.rooms import Audience, RoomService, Viewer
from app.settings import Settings
from app.transport import text_frame

from .conftest import _settings
from ..serving import uvicorn_on_this_loop


@pytest.mark.parametrize("n", [0, 1, 125, 126, 127, 65535, 65536, 70000])
def test_text_frame_is_what_a_websocket_parser_reads(n):
    payload = b"x" * n
    reader = StreamReader()
    reader.feed_data(text_frame(payload))
    parser = Frame.parse(reader.read_exact, mask=False)
    try:
        next(parser)
    except StopIteration as done:
        frame = done.value
    else:  # pragma: no cover - the whole frame was fed
        raise AssertionError("the frame was cut short")
    assert frame.opcode is Opcode.TEXT and frame.fin and frame.data == payload


def test_wire_bytes_is_wire_encoded():
    body = orjson.dumps({"type": "events", "t": 1.5, "ev": [[1, "é"]]})
    assert wire_bytes(body, 42) == wire(body, 42).encode()


class FakeRaw:
    """A socket whose buffer the test fills and drains: `writable` is clear while it is 'full'."""

    def __init__(self):
        self.writable = asyncio.Event()
        self.writable.set()
        self.sent: list[dict] = []

    def write(self, payload: bytes) -> bool:
        self.sent.append(orjson.loads(payload))
        return True


def _frame(kind, size=0, **kw):
    f = {"type": kind, "t": 1, "pad": "x" * size, **kw}
    return f, orjson.dumps(f)


def test_a_raw_viewer_gets_frames_at_once_and_waits_with_a_bounded_outbox_when_full():
    async def main():
        st = Settings.from_env({}, room_viewer_outbox_bytes=65536, send_stall_s=0.05)
        service = RoomService(st, MemoryBroker(), manager=None)
        a = Audience(service, "ABCDEF")
        v = Viewer(a, ws=None, client=None)
        v.raw = raw = FakeRaw()
        a.viewers[v.id] = v
        v.task = asyncio.ensure_future(v.run())
        v.push(*_frame("hello"))
        v.push(*_frame("snapshot"))
        v.push(*_frame("events", ev=[[1, "a"]]))
        v.say({"type": "room"})
        # Written at once, in order, each with the next seq; nothing waits.
        assert [f["type"] for f in raw.sent] == ["hello", "snapshot", "events", "room"]
        assert [f["seq"] for f in raw.sent] == [1, 2, 3, 4] and not v.outbox
        raw.writable.clear()  # the page stops reading
        for _ in range(200):
            v.push(*_frame("events", 10_000, ev=[[1, "words"]]))
            assert v.outbox.bytes <= st.room_viewer_outbox_bytes + 10_100
        assert len(raw.sent) == 4 and v.dropped >= 1  # dropped to the latest snapshot
        await asyncio.sleep(0.1)
        assert a.close_stalled(time.monotonic()) == [v]  # its one send waited too long
        v.closed = False  # (as if the close had not been sent) the page reads again
        v.task = asyncio.ensure_future(v.run())
        v._wake.set()
        v.push(*_frame("snapshot"))
        raw.writable.set()
        await asyncio.sleep(0.01)
        # What waited was dropped, the events after it skipped: the next picture is the snapshot.
        assert [f["type"] for f in raw.sent[4:]] == ["snapshot"]
        seqs = [f["seq"] for f in raw.sent]
        assert seqs == list(range(1, len(seqs) + 1))
        v.task.cancel()

    asyncio.run(main())


def test_followers_under_uvicorn_take_the_raw_path_with_the_presenters_bytes(tmp_path):
    """A real uvicorn on this loop: the follower's connection uses the raw path, and what it gets
    is the presenter's frames, byte for byte after `seq`, its own `seq` without gaps."""

    async def main():
        app = create_app(_settings(tmp_path))
        async with uvicorn_on_this_loop(app) as port:
            p, code = await open_room(port)
            v = await connect(f"ws://127.0.0.1:{port}/ws?room={code}", compression=None)
            got = [orjson.loads(await v.recv()) for _ in range(40)]
            (viewer,) = app.state.rooms.audiences[code].viewers.values()
            assert viewer.raw is not None  # the cheap path, not send_text
            assert [f["seq"] for f in got] == list(range(1, 41))
            assert got[0]["type"] == "hello" and "secret" not in got[0]
            # The presenter's frames from the viewer's first events on, without their seq.
            mine = [f for f in got if f["type"] == "events"]
            presenter = []
            while len(presenter) < 200 and (not presenter or presenter[-1]["t"] < mine[-1]["t"]):
                f = orjson.loads(await p.recv())
                if f["type"] == "events":
                    presenter.append(f)
            strip = [{k: x for k, x in f.items() if k != "seq"} for f in mine]
            theirs = [{k: x for k, x in f.items() if k != "seq"} for f in presenter]
            assert all(f in theirs for f in strip[-5:])
            await v.close()
            await p.close()

    asyncio.run(main())


def test_a_slow_shared_broker_never_holds_up_the_presenter_and_its_backlog_is_bounded():
    """The host's frames wait for the broker in order, out of the runner's way; past
    MAX_PUBLISH_BACKLOG they are dropped for a fresh snapshot."""
    from app.rooms import MAX_PUBLISH_BACKLOG, HostedRoom

    class SlowShared(MemoryBroker):
        shared = True

        def __init__(self):
            super().__init__()
            self.gate = asyncio.Event()
            self.batches: list[list[bytes]] = []

        async def publish_many(self, channel, items):
            await self.gate.wait()
            self.batches.append(list(items))

    class Session:
        id, job, _snapshot_pending, snapshots = "s", None, False, 0

        def queue_snapshot(self):
            self.snapshots += 1
            self._snapshot_pending = True

    async def main():
        b = SlowShared()
        service = RoomService(Settings.from_env({}), b, manager=None)
        room = HostedRoom(service, "ABCDEF", Session(), client=None)
        for i in range(3):
            await asyncio.wait_for(room.publish_frame(*_frame("events", n=i)), 0.5)  # no waiting
        await asyncio.sleep(0)
        b.gate.set()
        await asyncio.sleep(0.01)
        sent = [orjson.loads(x[1:])["n"] for batch in b.batches for x in batch]
        assert sent == [0, 1, 2]
        b.gate.clear()
        await room.publish_frame(*_frame("events", n=3))  # taken by the publisher, which waits
        await asyncio.sleep(0)
        for i in range(MAX_PUBLISH_BACKLOG + 5):
            await room.publish_frame(*_frame("events", n=4 + i))
        assert len(room._out) <= MAX_PUBLISH_BACKLOG and room.session.snapshots == 1
        b.gate.set()
        await asyncio.sleep(0.01)
        sent = [orjson.loads(x[1:])["n"] for batch in b.batches for x in batch]
        assert sent[:4] == [0, 1, 2, 3] and sent == sorted(sent) and not room._out

        # An overflow drops state frames only: a new world's hello waiting there, the frames
        # after it that are not state, and the clicks the dropped frames told are all published.
        b.gate.clear()
        b.batches.clear()
        room.session._snapshot_pending = False
        await room.publish_frame(*_frame("events", n=-1))  # taken by the publisher, which waits
        await asyncio.sleep(0)
        await room.publish_frame(*_frame("hello", n=-2, actions=[]))
        await room.publish_frame(*_frame("error", n=-3, message="m"))
        for i in range(MAX_PUBLISH_BACKLOG + 5):
            extra = {"acts": [{"at": i, "kind": "crash"}]} if i % 50 == 0 else {}
            await room.publish_frame(*_frame("events", n=1000 + i, **extra))
        assert len(room._out) <= MAX_PUBLISH_BACKLOG and room.session.snapshots == 2
        b.gate.set()
        for _ in range(1000):  # loop turns, not time: until the publisher has sent it all
            if not room._out and (room._publisher is None or room._publisher.done()):
                break
            await asyncio.sleep(0)
        got = [orjson.loads(x[1:]) for batch in b.batches for x in batch]
        kinds = [f["type"] for f in got]
        assert kinds[:3] == ["events", "hello", "error"], kinds
        acts = [a["at"] for f in got for a in f.get("acts", ())]
        assert acts == [0, 50, 100], acts

    asyncio.run(main())


def test_a_viewer_leaving_while_its_send_is_stuck_ends_its_task_and_aborts_its_socket():
    """A page that stopped reading, then went (its close frame in, its socket never draining):
    leaving cancels the viewer's task parked on the full socket and aborts the connection, so
    neither lingers (the stall check no longer sees a viewer that has left)."""
    closed: list = []

    async def main():
        import app.rooms as rooms_mod

        async def fake_close(ws, code, reason, timeout_s=2.0):
            closed.append((ws, code))

        real = rooms_mod.close_or_abort
        rooms_mod.close_or_abort = fake_close
        try:
            service = RoomService(Settings.from_env({}), MemoryBroker(), manager=None)
            a = Audience(service, "ABCDEF")
            ws = object()
            v = Viewer(a, ws=ws, client=None)
            v.raw = raw = FakeRaw()
            a.viewers[v.id] = v
            v.task = asyncio.ensure_future(v.run())
            raw.writable.clear()  # the page stops reading
            v.push(*_frame("snapshot"))
            for _ in range(100):  # loop turns, not time: until the task parks on the socket
                if v.sending_since is not None:
                    break
                await asyncio.sleep(0)
            assert v.sending_since is not None and not v.task.done()  # parked on the socket
            await service.leave(v)
            for _ in range(100):
                if v.task.done() and closed:
                    break
                await asyncio.sleep(0)
            assert v.task.done() and closed == [(ws, 4002)]
        finally:
            rooms_mod.close_or_abort = real

    asyncio.run(main())
