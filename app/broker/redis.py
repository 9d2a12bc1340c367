"""The Redis broker: channels are Redis pub/sub, keys are Redis strings with a TTL.

One connection pool for commands, one dedicated connection for the subscriptions (read by one
task that hands each message to its channel's callbacks), a small pool of its own for `set_many`
and `get_many` (the recipes' batches: they never wait behind a busy pool) and one connection for
the watchdog's ping. When Redis goes away, every operation raises `BrokerDown` within
`timeout_s`, the reader rebuilds its connection and subscribes again to every channel once Redis
is back, and a watchdog's ping tells `on_health` listeners both ways.

Busy is not down: an operation that only timed out (waiting for a pool connection, or for its
answer on an event loop too busy to read it) raises `BrokerDown` but does not change the health;
a refused or broken connection does, at once. The watchdog calls Redis down after `ping_misses`
pings in a row went unanswered (a hung Redis), or at the first refused connection (a stopped one).
Messages published while a worker was cut off are not replayed (pub/sub is at most once): a
room's viewers ask for a fresh snapshot when they come back (app/rooms.py).
"""

from __future__ import annotations

import asyncio
import logging

import redis.asyncio as aioredis
from redis.exceptions import RedisError
from redis.exceptions import TimeoutError as RedisTimeoutError

from .base import Broker, BrokerDown, Callback, Unsubscribe, remove_callback

log = logging.getLogger("playground.broker")

_ERRORS = (RedisError, OSError, asyncio.TimeoutError)


def _why(e: BaseException) -> str:
    return f"{type(e).__name__}: {e}"[:200] or type(e).__name__


def _busy(e: BaseException) -> bool:
    """Did `e` only run out of time (a busy pool or loop) rather than find Redis unreachable?
    (redis-py's pool says "No connection available" as a ConnectionError caused by a timeout.)"""
    while e is not None:
        if isinstance(e, (asyncio.TimeoutError, RedisTimeoutError)):
            return True
        e = e.__cause__
    return False


# KEYS[1]'s value starts with ARGV[1] (bytes compared, no patterns): delete it. 1 if deleted.
_DELETE_IF_STARTS = """
local v = redis.call('GET', KEYS[1])
if v and string.sub(v, 1, string.len(ARGV[1])) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
"""

class RedisBroker(Broker):
    kind = "redis"
    shared = True

    def __init__(self, url: str, timeout_s: float = 2.0, ping_every_s: float = 1.0,
                 max_connections: int = 32, ping_misses: int = 3):
        super().__init__()
        self.url = url
        self.timeout_s = timeout_s
        self.ping_every_s = ping_every_s
        self.ping_misses = ping_misses
        self._missed = 0  # the watchdog's unanswered pings in a row

        def client(n: int) -> aioredis.Redis:
            # A bounded pool that waits for a free connection (up to `timeout_s`) rather than
            # failing: a class joining at once makes hundreds of small operations together.
            return aioredis.Redis(connection_pool=aioredis.BlockingConnectionPool.from_url(
                url, max_connections=n, timeout=timeout_s, socket_timeout=timeout_s,
                socket_connect_timeout=timeout_s))

        self.r = client(max_connections)
        self._writer = client(8)  # set_many, get_many: the batches, never behind the pool
        self._pinger = client(1)  # the watchdog: never queued behind the pool
        self._subs: dict[str, list[Callback]] = {}
        self._ps = None
        self._confirmed: set[str] = set()  # channels Redis confirmed on the reader's connection
        self._changed = asyncio.Event()  # the set of channels changed: the reader (re)subscribes
        self._reader: asyncio.Task | None = None
        self._watchdog: asyncio.Task | None = None
        self._closed = False

    def __repr__(self) -> str:
        return f"RedisBroker({self.url!r})"

    async def start(self) -> None:
        try:
            await self._op(self.r.ping())
        except BrokerDown as e:  # start anyway: the watchdog says when Redis is back
            log.warning("broker: Redis at %s is not reachable (%s)", self.url, e)
        self._reader = asyncio.ensure_future(self._read())
        self._watchdog = asyncio.ensure_future(self._watch())

    async def close(self) -> None:
        self._closed = True
        for t in (self._reader, self._watchdog):
            if t is not None:
                t.cancel()
        if self._ps is not None:
            try:
                await self._ps.aclose()
            except Exception:
                pass
        for r in (self.r, self._writer, self._pinger):
            try:
                await r.aclose()
            except Exception:
                pass

    async def _op(self, coro):
        # asyncio.timeout, not wait_for: no task of its own, so on a busy loop the answer reaches
        # the caller one or two loop turns sooner (each turn can be long with 500 sessions).
        try:
            async with asyncio.timeout(self.timeout_s):
                out = await coro
        except _ERRORS as e:
            if not _busy(e):
                self._set_health(False, _why(e))
            raise BrokerDown(f"Redis at {self.url} is not reachable ({_why(e)})") from None
        self._set_health(True)
        return out

    # --- channels ----------------------------------------------------------------------------------
    async def publish(self, channel: str, data: bytes) -> None:
        await self._op(self.r.publish(channel, data))

    async def publish_many(self, channel: str, items: list[bytes]) -> None:
        async def send():
            async with self.r.pipeline(transaction=False) as pipe:
                for data in items:
                    pipe.publish(channel, data)
                await pipe.execute()

        await self._op(send())

    async def subscribe(self, channel: str, callback: Callback) -> Unsubscribe:
        subs = self._subs.setdefault(channel, [])
        subs.append(callback)
        if len(subs) == 1:
            self._changed.set()
            await self._subscribed(channel)

        async def unsubscribe() -> None:
            if remove_callback(self._subs, channel, callback):
                self._changed.set()  # the reader unsubscribes

        return unsubscribe

    async def _subscribed(self, channel: str) -> None:
        """Wait (at most `timeout_s`) until the reader has subscribed to `channel`, so that what
        is published after `subscribe` returns is seen."""
        deadline = asyncio.get_running_loop().time() + self.timeout_s
        while asyncio.get_running_loop().time() < deadline:
            if channel in self._confirmed:
                return
            await asyncio.sleep(0.005)
        raise BrokerDown(f"Redis at {self.url}: could not subscribe to {channel}")

    async def _read(self) -> None:
        """The one reader of every subscription: (re)connect, follow the wanted channels, hand
        each message to its callbacks."""
        while not self._closed:
            ps = self.r.pubsub()
            self._confirmed = set()
            try:
                have: set[str] = set()
                while not self._closed:
                    want = set(self._subs)
                    self._changed.clear()
                    if want - have:
                        await asyncio.wait_for(ps.subscribe(*sorted(want - have)), self.timeout_s)
                    if have - want:
                        await asyncio.wait_for(ps.unsubscribe(*sorted(have - want)), self.timeout_s)
                    have = want
                    if not have:
                        self._ps = ps
                        await self._changed.wait()
                        continue
                    msg = await ps.get_message(timeout=0.05)
                    self._ps = ps
                    if msg is None:
                        continue
                    ch = msg["channel"].decode() if isinstance(msg["channel"], bytes) else msg["channel"]
                    if msg.get("type") == "subscribe":
                        self._confirmed.add(ch)
                    elif msg.get("type") == "unsubscribe":
                        self._confirmed.discard(ch)
                    if msg.get("type") != "message":
                        continue
                    for cb in list(self._subs.get(ch, ())):
                        try:
                            cb(msg["data"])
                        except Exception:  # a subscriber's bug must not stop the others
                            log.exception("broker subscriber failed on %s", ch)
            except asyncio.CancelledError:
                raise
            except _ERRORS as e:
                if not _busy(e):
                    self._set_health(False, _why(e))
                self._ps = None
                try:
                    await ps.aclose()
                except Exception:
                    pass
                await asyncio.sleep(0.25)

    async def _watch(self) -> None:
        while not self._closed:
            await asyncio.sleep(self.ping_every_s)
            await self.check()

    async def check(self) -> bool:
        """One watchdog round: ping Redis on the watchdog's own connection. Answered: Redis is
        up. Refused or broken: down at once. Unanswered within `timeout_s`: down only when that is
        the `ping_misses`-th in a row (one late answer is a loop too busy to read it). Returns the
        health after this round."""
        try:
            await asyncio.wait_for(self._pinger.ping(), self.timeout_s)
        except _ERRORS as e:
            if _busy(e):
                self._missed += 1
                if self._missed < self.ping_misses:
                    return self.ok
            self._set_health(False, _why(e))
            return False
        self._missed = 0
        self._set_health(True)
        return True

    # --- keys --------------------------------------------------------------------------------------
    async def set(self, key: str, value: bytes, ttl_s: float | None = None) -> None:
        px = None if ttl_s is None else max(1, int(ttl_s * 1000))
        await self._op(self.r.set(key, value, px=px))

    async def set_many(self, items: dict[str, bytes], ttl_s: float | None = None) -> None:
        """One pipelined round trip on the batches' own pool (never behind the commands' pool)."""
        px = None if ttl_s is None else max(1, int(ttl_s * 1000))

        async def send():
            async with self._writer.pipeline(transaction=False) as pipe:
                for key, value in items.items():
                    pipe.set(key, value, px=px)
                await pipe.execute()

        await self._op(send())

    async def get(self, key: str) -> bytes | None:
        return await self._op(self.r.get(key))

    async def get_many(self, keys: list[str]) -> list[bytes | None]:
        """One MGET on the batches' own pool."""
        return await self._op(self._writer.mget(keys)) if keys else []

    async def expire(self, key: str, ttl_s: float) -> bool:
        return bool(await self._op(self.r.pexpire(key, max(1, int(ttl_s * 1000)))))

    async def delete(self, key: str) -> None:
        await self._op(self.r.delete(key))

    async def delete_if_starts(self, key: str, prefix: bytes) -> bool:
        """GET, compare and DEL in one Lua script: atomic in Redis."""
        return bool(await self._op(self.r.eval(_DELETE_IF_STARTS, 1, key, prefix)))

    async def health(self) -> dict:
        try:
            await self._op(self.r.ping())
        except BrokerDown:
            pass
        return {"kind": self.kind, "ok": self.ok, "error": self.error}


__all__ = ["RedisBroker"]
