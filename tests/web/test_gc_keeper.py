"""The collector's keeper (app/sessions.py `SessionManager.keep_gc`): survivors are frozen out of
the full collections' sight, and a periodic full pass still frees cyclic garbage among them."""

from __future__ import annotations

import asyncio
import gc
import weakref

from app.sessions import SessionManager
from app.settings import Settings


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
            for _ in range(3000):  # until a freeze has taken it (each turn waits 10 ms)
                await asyncio.sleep(0.01)
                if gc.get_freeze_count() > before:
                    break
            else:
                raise AssertionError("the keeper never froze anything")
            del obj  # now garbage, a cycle: only a collection that sees it frees it
            for _ in range(3000):
                await asyncio.sleep(0.01)
                if dead() is None:
                    break
            else:
                raise AssertionError("frozen cyclic garbage was never freed")
        finally:
            await m.stop()

    asyncio.run(main())


def test_the_keeper_is_off_with_a_zero_interval():
    async def main():
        m = SessionManager(Settings(gc_freeze_every_s=0), {})
        m.start()
        assert m._gc_task is None
        await m.stop()

    asyncio.run(main())
