"""The collector's keeper (app/sessions.py `SessionManager.keep_gc`): survivors are frozen out of
the full collections' sight, and a periodic full pass still frees cyclic garbage among them, sooner
when pages come and go; and a closed session is freed by reference counting alone (frozen, a
cycle through it would wait for that pass, with its world, checkpoints and simulation)."""

from __future__ import annotations

import asyncio
import gc
import weakref

from websockets.asyncio.client import connect

from app.main import create_app
from app.session import default_scenario
from app.sessions import SessionManager
from app.settings import Settings

from .conftest import _settings
from ..serving import uvicorn_on_this_loop


class _Cycle:
    def __init__(self):
        self.me = self


def test_frozen_survivors_are_still_freed_by_the_periodic_full_collection():
    async def main():
        m = SessionManager(Settings(gc_freeze_every_s=0.01, gc_full_every_s=0.05), {})
        # What earlier tests' keepers froze is unfrozen first: a full pass of this keeper may
        # free some of it and leave fewer frozen than before, whatever it froze.
        gc.unfreeze()
        before = gc.get_freeze_count()
        obj = _Cycle()
        dead = weakref.ref(obj)
        m.start()
        try:
            await _until(lambda: gc.get_freeze_count() > before, "the keeper never froze anything")
            del obj  # now garbage, a cycle: only a collection that sees it frees it
            await _until(lambda: dead() is None, "frozen cyclic garbage was never freed")
        finally:
            await m.stop()
            gc.unfreeze()

    asyncio.run(main())


async def _until(pred, failure: str, settle: int = 0) -> None:
    """Wait (bounded: 3,000 turns of 10 ms) until `pred()`, then `settle` more turns for the
    tasks that were running to finish."""
    for _ in range(3000):
        await asyncio.sleep(0.01)
        if pred():
            break
    else:
        raise AssertionError(failure)
    for _ in range(settle):
        await asyncio.sleep(0.01)


async def _frozen_then_garbage(m: SessionManager):
    """A cycle the keeper has frozen, then dropped: a weak reference to it."""
    before = gc.get_freeze_count()
    obj = _Cycle()
    dead = weakref.ref(obj)
    await _until(lambda: gc.get_freeze_count() > before, "the keeper never froze anything")
    del obj
    return dead


def test_pages_coming_and_going_bring_the_full_pass_forward():
    async def main():
        m = SessionManager(Settings(gc_freeze_every_s=0.01, gc_full_every_s=3600,
                                    gc_full_churn_min=4), {})
        gc.unfreeze()
        m.start()
        try:
            dead = await _frozen_then_garbage(m)
            for _ in range(50):  # without churn, the hour-long full interval holds
                await asyncio.sleep(0.01)
            assert m.gc_full_passes == 0 and dead() is not None
            for _ in range(3):
                m.connection_opened()
            for _ in range(3):  # 3 ended of 3 open: a quarter, but under the minimum of 4
                m.connection_ended()
            for _ in range(50):
                await asyncio.sleep(0.01)
            assert m.gc_full_passes == 0 and dead() is not None and m.churn == 3
            m.connection_opened()
            m.connection_ended()
            await _until(lambda: dead() is None,
                         "frozen cyclic garbage was not freed after the churn")
            assert m.gc_full_passes == 1 and m.churn == 0 and m.connections == 0
        finally:
            await m.stop()
            gc.unfreeze()  # (later tests count from nothing frozen)

    asyncio.run(main())


def test_a_burst_of_new_sessions_is_frozen_without_waiting_for_the_interval(tmp_path):
    """So the next collection does not scan all of them at once (every session waits for it)."""
    async def main():
        st = _settings(tmp_path, gc_freeze_every_s=3600, gc_freeze_new_sessions=3)
        m = SessionManager(st, {})
        gc.unfreeze()
        m.start()
        await asyncio.sleep(0)  # the keeper counts from its start
        try:
            for _ in range(2):
                m.create(default_scenario(st, seed=1), None, None)
            for _ in range(150):  # 1.5 s: the keeper looks every second
                await asyncio.sleep(0.01)
            assert gc.get_freeze_count() == 0  # two new sessions, under the three that trigger
            m.create(default_scenario(st, seed=1), None, None)
            await _until(lambda: gc.get_freeze_count() > 0,
                         "three new sessions were not frozen before the interval")
        finally:
            await m.stop()
            gc.unfreeze()

    asyncio.run(main())


def test_the_full_pass_comes_at_a_quarter_of_what_is_open():
    m = SessionManager(Settings(gc_full_churn_min=32), {})
    assert m._churn_for_full() == 32
    m.connections = 400
    assert m._churn_for_full() == 100


def test_a_closed_session_is_freed_by_reference_counting_alone(tmp_path):
    """A page plays, clicks and leaves; once its session is reaped, nothing keeps it: the
    collector is off throughout, so no cycle may hold it (its relay once did)."""
    async def main():
        app = create_app(_settings(tmp_path, detached_grace_s=0, reap_interval_s=0.05))
        async with uvicorn_on_this_loop(app) as port:
            gc.disable()
            try:
                ws = await connect(f"ws://127.0.0.1:{port}/ws", compression=None)
                for _ in range(10):
                    await ws.recv()
                await ws.send('{"type": "action", "action": {"do": "crash", "node": "n1"}}')
                for _ in range(10):
                    await ws.recv()
                (s,) = app.state.sessions.sessions.values()
                assert s.relay is not None  # the rooms' hook, with a way back to the session
                dead = weakref.ref(s)
                del s
                await ws.close()
                await _until(lambda: not app.state.sessions.sessions,
                             "the closed page's session was never reaped", settle=20)
                assert dead() is None, [type(r).__name__ for r in gc.get_referrers(dead())]
                assert app.state.sessions.connections == 0 and app.state.sessions.churn >= 2
            finally:
                gc.enable()

    asyncio.run(main())


def test_a_closed_presenters_session_is_freed_by_reference_counting_alone():
    """A session that hosted a room: once the room has ended with it, nothing keeps either (the
    broker's unsubscribe closure once held the room, and the room its session)."""
    from app.broker import MemoryBroker
    from app.rooms import RoomService

    async def main():
        st = Settings(room_count_every_s=0.01)
        m = SessionManager(st, {})
        service = RoomService(st, MemoryBroker(), m)
        await service.start()
        s = m.create(default_scenario(st, seed=1), None, None)
        service.track(s)
        room = await service.open_room(s, None)
        gc.disable()
        try:
            dead, room_dead = weakref.ref(s), weakref.ref(room)
            m.drop(s)
            del s, room
            # The room's loop sees its session closed and ends the room.
            await _until(lambda: not service.hosted, "the room did not end with its session",
                         settle=20)
            assert room_dead() is None, [type(r).__name__ for r in gc.get_referrers(room_dead())]
            assert dead() is None
        finally:
            gc.enable()
            await service.stop()

    asyncio.run(main())


def test_the_keeper_is_off_with_a_zero_interval():
    async def main():
        m = SessionManager(Settings(gc_freeze_every_s=0), {})
        m.start()
        assert m._gc_task is None
        await m.stop()

    asyncio.run(main())
