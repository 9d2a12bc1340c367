"""The broker interface, against both implementations (Redis: a real redis-server)."""

from __future__ import annotations

import asyncio
import shutil

import pytest

from app.broker import BrokerDown, MemoryBroker, make_broker
from app.broker.redis import RedisBroker
from tests.serving import free_port, start_redis, stop_server


@pytest.fixture(params=["memory", "redis"])
def broker_url(request):
    if request.param == "memory":
        return ""
    return request.getfixturevalue("redis_url")


async def _wait_for(pred, timeout=3.0):
    deadline = asyncio.get_running_loop().time() + timeout
    while not pred():
        assert asyncio.get_running_loop().time() < deadline, "timed out"
        await asyncio.sleep(0.01)


def test_publish_reaches_every_subscriber_in_order_until_it_unsubscribes(broker_url):
    async def main():
        b, other = make_broker(broker_url), make_broker(broker_url)
        if not broker_url:
            other = b  # one process: the in-process broker is shared by its users
        await b.start()
        if other is not b:
            await other.start()
        got_a, got_b = [], []
        unsub_a = await b.subscribe("ch", got_a.append)
        await other.subscribe("ch", got_b.append)
        await b.subscribe("elsewhere", lambda d: got_a.append(b"wrong channel"))
        for i in range(50):
            await b.publish("ch", b"m%d" % i)
        await _wait_for(lambda: len(got_a) == 50 and len(got_b) == 50)
        assert got_a == got_b == [b"m%d" % i for i in range(50)]
        await unsub_a()
        await b.publish("ch", b"after")
        await _wait_for(lambda: got_b[-1:] == [b"after"])
        await asyncio.sleep(0.1)
        assert got_a[-1] == b"m49"
        await b.close()
        if other is not b:
            await other.close()

    asyncio.run(main())


def test_keys_set_get_delete_and_expire(broker_url):
    async def main():
        b = make_broker(broker_url)
        await b.start()
        assert await b.get("k") is None
        await b.set("k", b"v1")
        await b.set("k", b"v2", ttl_s=30)
        assert await b.get("k") == b"v2"
        await b.delete("k")
        await b.delete("k")
        assert await b.get("k") is None
        await b.set("short", b"x", ttl_s=0.05)
        await asyncio.sleep(0.2)
        assert await b.get("short") is None
        assert await b.expire("short", 10) is False
        await b.set("kept", b"y", ttl_s=0.1)
        assert await b.expire("kept", 30) is True
        await asyncio.sleep(0.2)
        assert await b.get("kept") == b"y"
        assert (await b.health())["ok"] is True
        await b.close()

    asyncio.run(main())


def test_delete_if_starts_deletes_only_a_value_that_starts_with_the_prefix(broker_url):
    async def main():
        b = make_broker(broker_url)
        await b.start()
        await b.set("r", b'{"w":"ab12","t":1}', ttl_s=30)
        assert await b.delete_if_starts("r", b'{"w":"cd34",') is False  # another worker's: kept
        assert await b.get("r") == b'{"w":"ab12","t":1}'
        assert await b.delete_if_starts("r", b'"t":1') is False  # inside, not at the start
        assert await b.delete_if_starts("r", b'{"w":"ab12",') is True
        assert await b.get("r") is None
        assert await b.delete_if_starts("r", b'{"w":"ab12",') is False  # nothing there
        await b.set("pattern", b"a.b", ttl_s=30)  # bytes compared, not a Lua pattern
        assert await b.delete_if_starts("pattern", b"a-") is False
        assert await b.delete_if_starts("pattern", b"a.") is True
        await b.close()

    asyncio.run(main())


def test_a_reaped_sessions_recipe_leaves_redis_unless_another_copy_wrote_it(redis_url):
    """The reaper's closed sessions (and one dropped for a newcomer) do not wait out their
    recipe's 31-minute TTL in Redis; a session whose page came back and was rebuilt (by another
    worker, or by this one: another copy, another `w`) keeps the recipe that copy wrote."""
    from app.rooms import RoomService, _k_recipe
    from app.session import default_scenario
    from app.sessions import SessionManager
    from app.settings import Settings

    async def main():
        st = Settings.from_env({}, broker=redis_url, detached_grace_s=0)
        m = SessionManager(st, {})
        service = RoomService(st, make_broker(redis_url), m)
        await service.start()
        try:
            gone, moved, again, kept, evicted = (m.create(default_scenario(st, seed=i), None, None)
                                                 for i in range(1, 6))
            every = (gone, moved, again, kept, evicted)
            for s in every:
                service.track(s)
                s.relay.recipe.update(sc={}, actions=[], t=0)
                await service.store_recipe(s.relay)
                mine = b'{"w":"%s",' % s.relay.writer.encode()
                assert (await service.broker.get(_k_recipe(s.id))).startswith(mine)
            assert len({s.relay.writer for s in every}) == 5
            assert all(s.relay.writer.startswith(service.worker + ".") for s in every)
            # `moved`'s page went to another worker, which rebuilt its session and wrote it;
            # whatever its scenario holds (a config may name this copy, even first: not first
            # in the recipe) does not make it this copy's. `again`'s page came back to this
            # worker after the reaper's decision and got a new copy, which wrote it.
            others = {}
            for s, w in ((moved, b"0ther000.00000000"), (again, service.worker.encode() + b".1")):
                mine = b'{"w":"%s",' % s.relay.writer.encode()
                others[s.id] = (await service.broker.get(_k_recipe(s.id))).replace(
                    mine, b'{"w":"%s","sc":{"w":"%s"},' % (w, s.relay.writer.encode()), 1)
                await service.broker.set(_k_recipe(s.id), others[s.id], ttl_s=60)
            for s in (gone, moved, again):
                s.detached_at = 0.0  # closed tabs, long ago
            kept.detached_at = None  # still attached (as far as the reaper knows)
            kept.ws = object()
            kept.last_input = 10**9
            assert sorted(m.reap(now=10**9)) == sorted([gone.id, moved.id, again.id])
            evicted.detached_at = 1.0  # a closed tab dropped for a newcomer under a cap
            assert m._evict_detached([evicted])
            await _wait_for(lambda: not service._tasks)
            assert await service.broker.get(_k_recipe(gone.id)) is None
            assert await service.broker.get(_k_recipe(evicted.id)) is None
            assert await service.broker.get(_k_recipe(moved.id)) == others[moved.id]
            assert await service.broker.get(_k_recipe(again.id)) == others[again.id]
            assert await service.broker.get(_k_recipe(kept.id)) is not None
        finally:
            kept.ws = None
            await service.stop()

    asyncio.run(main())


def test_make_broker_refuses_what_is_not_a_broker_url():
    assert isinstance(make_broker(""), MemoryBroker)
    assert isinstance(make_broker("redis://127.0.0.1:1/0"), RedisBroker)
    with pytest.raises(ValueError, match="PLAYGROUND_BROKER"):
        make_broker("amqp://x")


def test_redis_going_away_is_reported_and_coming_back_too():
    if shutil.which("redis-server") is None:
        pytest.skip("redis-server is not installed (make test installs it)")
    port = free_port()
    url = f"redis://127.0.0.1:{port}/0"

    async def main(server):
        b = RedisBroker(url, timeout_s=0.5, ping_every_s=0.1)
        changes = []
        b.on_health(lambda ok, err: changes.append(ok))
        await b.start()
        got = []
        await b.subscribe("ch", got.append)
        stop_server(server)
        with pytest.raises(BrokerDown, match="not reachable"):
            await b.set("k", b"v")
        h = await b.health()
        assert h["ok"] is False and h["error"] and h["kind"] == "redis"
        server = start_redis(port)
        try:
            await _wait_for(lambda: b.ok, timeout=5)
            assert changes[:2] == [False, True]
            for _ in range(100):  # the reader subscribes again on its own
                await b.publish("ch", b"back")
                if got:
                    break
                await asyncio.sleep(0.05)
            assert got and got[0] == b"back"
        finally:
            await b.close()
        return server

    stop_server(asyncio.run(main(start_redis(port))))


# --- the recipes' group commit and the watchdog ----------------------------------------------------

def test_a_busy_pool_never_drops_a_write(redis_url):
    """Every connection of a tiny pool checked out and held: the writes of 200
    sessions, many each, still all land, each key at its latest value, in fewer round trips than
    writes (the KeyWriter's batches go on their own connection)."""
    import redis.asyncio as aioredis

    from app.broker.writer import KeyWriter

    async def main():
        b = RedisBroker(redis_url, timeout_s=0.3, max_connections=2)
        await b.start()
        pool = b.r.connection_pool
        hold = [await pool.get_connection() for _ in range(2)]
        with pytest.raises(BrokerDown):  # the pool is really exhausted...
            await b.set("via-pool", b"x")
        assert b.ok  # ...which is busy, not down
        w = KeyWriter(b, ttl_s=60)

        async def session(i):
            for v in range(5):
                await w.set(f"k{i}", b"%d-%d" % (i, v))

        await asyncio.gather(*(session(i) for i in range(200)))
        check = aioredis.Redis.from_url(redis_url)
        got = await check.mget([f"k{i}" for i in range(200)])
        assert got == [b"%d-4" % i for i in range(200)]
        assert w.keys == 1000 and w.batches <= 10 and w.pending() == 0  # ~200 writes a round trip
        for conn in hold:
            await pool.release(conn)
        await check.aclose()
        await b.close()

    asyncio.run(main())


class _SlowBroker(MemoryBroker):
    """An in-process broker whose `set_many` calls each wait until the test lets that one go
    (`release(i)`, optionally failing it), recording the batches."""

    def __init__(self):
        super().__init__()
        self.batches: list[dict] = []
        self._gates: list[asyncio.Future] = []

    async def set_many(self, items, ttl_s=None):
        self.batches.append(dict(items))
        gate = asyncio.get_running_loop().create_future()
        self._gates.append(gate)
        error = await gate
        if error is not None:
            raise error
        await super().set_many(items, ttl_s)

    def release(self, i, error=None):
        self._gates[i].set_result(error)


async def _turns(n=3):
    for _ in range(n):
        await asyncio.sleep(0)


def test_batches_keep_each_keys_order_and_release_callers_when_acknowledged():
    from app.broker.writer import KeyWriter

    async def main():
        b = _SlowBroker()
        w = KeyWriter(b, ttl_s=None)
        first = [asyncio.ensure_future(w.set(f"s{i}", b"v1")) for i in range(10)]
        await _turns()
        assert b.batches == [{f"s{i}": b"v1" for i in range(10)}]  # one turn's writes: one batch
        # While it is in flight, sessions s0-s9 write twice more and a new one once: the new one
        # goes at once (batches do not wait for each other); s0-s9's latest waits for batch 0.
        later = [asyncio.ensure_future(w.set(f"s{i}", v)) for i in range(10) for v in (b"v2", b"v3")]
        other = asyncio.ensure_future(w.set("new", b"n1"))
        await _turns()
        assert b.batches[1:] == [{"new": b"n1"}]
        b.release(1)
        await other
        assert not any(f.done() for f in first + later)
        b.release(0)
        await asyncio.gather(*first)
        await _turns()
        assert not any(f.done() for f in later)  # their values are not acknowledged yet
        assert b.batches[2] == {f"s{i}": b"v3" for i in range(10)}
        b.release(2)
        await asyncio.gather(*later)
        assert [await b.get(f"s{i}") for i in range(10)] == [b"v3"] * 10
        assert (w.batches, w.keys, w.pending()) == (3, 21, 0)

    asyncio.run(main())


def test_set_nowait_queues_the_write_in_this_turn_and_its_future_tells_when_it_is_in():
    from app.broker.writer import KeyWriter

    async def main():
        b = _SlowBroker()
        w = KeyWriter(b, ttl_s=None)
        fut = w.set_nowait("s1", b"v1")  # no await: the caller goes on (a click's frame is sent)
        w.set_nowait("s2", b"v1")
        assert not fut.done()
        await _turns()
        assert b.batches == [{"s1": b"v1", "s2": b"v1"}]  # written with the turn's batch
        assert not fut.done()
        b.release(0)
        await fut
        assert await b.get("s1") == b"v1"
        failed = w.set_nowait("s1", b"v2")
        await _turns()
        b._set_health(False, "gone")  # the broker is lost while the batch is in flight...
        b.release(1, BrokerDown("gone"))  # ...which fails
        with pytest.raises(BrokerDown):
            await failed
        with pytest.raises(BrokerDown):  # known down: said at once, the value kept for later
            w.set_nowait("s1", b"v3")
        assert w.pending() == 1  # v3 (the newest) waits for the broker to be back

    asyncio.run(main())


def test_a_busy_batch_is_retried_and_a_down_broker_keeps_the_write_for_later():
    from app.broker.writer import KeyWriter

    async def main():
        b = _SlowBroker()
        w = KeyWriter(b, ttl_s=None)
        t = asyncio.ensure_future(w.set("s", b"v1"))
        await _turns()
        b.release(0, BrokerDown("timed out"))  # busy: the broker stays healthy
        await _turns()
        assert not t.done() and b.batches[1] == {"s": b"v1"}
        b.release(1)
        await t
        assert await b.get("s") == b"v1"
        # Down: the caller is told, the value stays and is written when the broker is back.
        t = asyncio.ensure_future(w.set("s", b"v2"))
        await _turns()
        b._set_health(False, "refused")
        b.release(2, BrokerDown("refused"))
        with pytest.raises(BrokerDown):
            await t
        with pytest.raises(BrokerDown):  # known down: no waiting
            await w.set("s", b"v3")
        assert w.pending() == 1 and await b.get("s") == b"v1"
        b._set_health(True)
        await _turns()
        assert b.batches[-1] == {"s": b"v3"}
        b.release(3)
        await _turns()
        assert w.pending() == 0 and await b.get("s") == b"v3"

    asyncio.run(main())


def test_reads_are_batched_and_see_the_broker(redis_url):
    """The reads of one turn go in one round trip (what a worker rebuilding many sessions does)."""
    from app.broker.writer import KeyWriter

    async def main():
        b = RedisBroker(redis_url)
        await b.start()
        w = KeyWriter(b, ttl_s=60)
        await asyncio.gather(*(w.set(f"r{i}", b"%d" % i) for i in range(50)))
        got = await asyncio.gather(*(w.get(f"r{i}") for i in list(range(50)) + [999]))
        assert got == [b"%d" % i for i in range(50)] + [None]
        assert w.batches == 1
        await b.close()

    asyncio.run(main())


def test_watchdog_is_not_fooled_by_a_slow_loop_but_reports_a_stopped_redis():
    """Unanswered pings (what a loop too busy to read the answer sees) trip the watchdog only
    `ping_misses` in a row; a stopped redis-server trips it at the first ping."""
    if shutil.which("redis-server") is None:
        pytest.skip("redis-server is not installed (make test installs it)")
    port = free_port()
    url = f"redis://127.0.0.1:{port}/0"

    async def main(server):
        b = RedisBroker(url, timeout_s=0.5, ping_every_s=3600, ping_misses=3)
        await b.start()
        changes = []
        b.on_health(lambda ok, err: changes.append(ok))
        real_ping = b._pinger.ping

        async def late_ping():  # the answer comes after the timeout: a busy loop's view
            raise asyncio.TimeoutError()

        b._pinger.ping = late_ping
        assert await b.check() is True and await b.check() is True
        b._pinger.ping = real_ping
        assert await b.check() is True  # answered: the count of misses starts again
        b._pinger.ping = late_ping
        assert await b.check() is True and await b.check() is True
        assert changes == [] and b.ok
        assert await b.check() is False  # the third in a row: a hung Redis is down
        assert changes == [False]
        b._pinger.ping = real_ping
        assert await b.check() is True and changes == [False, True]
        stop_server(server)
        assert await b.check() is False  # refused: down at once
        assert changes == [False, True, False] and "Connection" in (b.error or "")
        server = start_redis(port)
        assert await b.check() is True and changes[-1] is True
        await b.close()
        return server

    stop_server(asyncio.run(main(start_redis(port))))
