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
