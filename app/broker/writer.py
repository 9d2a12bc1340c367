"""Group commit of key writes (and batched reads): what one event-loop turn asks of the broker's
keys goes to it together.

A session's recipe goes to the broker at every click and control (a new world's waits for it:
`set`; a click's frame does not: `set_nowait`, and the page keeps the click until told the recipe
is in, app/rooms.py). One round trip per write made every click pay a round trip and a
pool checkout on a busy loop, and a busy pool then skipped the write; `KeyWriter` instead gathers
every `set` of one loop turn and writes them as one `Broker.set_many`: one round trip for many
sessions, on connections of its own. Each caller returns when the batch holding its value (or a
later value of the same key) is acknowledged.

Batches do not wait for each other (on a busy loop a round trip lasts several loop turns, and a
click must not wait for the previous batch too), but a key is in at most one batch in flight: a
value set meanwhile waits (the latest one only) until that batch is acknowledged, so a later
value is never overwritten by an earlier one and no version check is needed in the broker. A
batch that only ran out of time (the broker is busy, not down) is retried with its callers still
waiting; when the broker is down the callers get `BrokerDown` (their pages are told) and the
values stay here, written as soon as the broker is healthy again: a write is never dropped, only
delayed. While the broker is known to be down, `set` does not wait (a dead broker must not stall
the pages' streams).

Reads (`get`) are batched the same way (one `get_many` per loop turn): a worker rebuilding
hundreds of sessions at once (their worker was killed) reads their recipes in a few round trips
instead of queueing for a busy pool, and a read that only ran out of time is retried rather than
reported as a lost session.
"""

from __future__ import annotations

import asyncio
import logging

from .base import Broker, BrokerDown

log = logging.getLogger("playground.broker")


class KeyWriter:
    def __init__(self, broker: Broker, ttl_s: float | None):
        self.broker = broker
        self.ttl_s = ttl_s
        self._pending: dict[str, bytes] = {}  # key -> its latest value not yet sent
        self._waiters: dict[str, list[asyncio.Future]] = {}  # key -> callers of its pending value
        self._inflight: set[str] = set()  # keys in a batch not yet acknowledged
        self._reads: dict[str, list[asyncio.Future]] = {}  # key -> callers waiting for its value
        self._scheduled = False
        self._tasks: set[asyncio.Task] = set()
        self.batches = 0  # batches of writes acknowledged (round trips), for the stats
        self.keys = 0  # values written in them
        broker.on_health(self._health_changed)

    async def set(self, key: str, value: bytes) -> None:
        """Write `value` under `key` with the next batch; returns once it is acknowledged.
        Raises `BrokerDown` when the broker is down (the value is then written when it is back)."""
        return await self.set_nowait(key, value)

    def set_nowait(self, key: str, value: bytes) -> asyncio.Future:
        """`set` without waiting: the future is done when the value (or a later one of the same
        key) is acknowledged, or fails with `BrokerDown`. Raises `BrokerDown` at once when the
        broker is known to be down (the value is then written when it is back)."""
        self._pending[key] = value
        self._down_now()
        return self._future(self._waiters, key)

    async def get(self, key: str) -> bytes | None:
        """The value under `key`, read with the next batch. BrokerDown when the broker is down."""
        self._down_now()
        return await self._wait(self._reads, key)

    def pending(self) -> int:
        return len(self._pending) + len(self._inflight)

    async def _wait(self, table: dict[str, list[asyncio.Future]], key: str):
        return await self._future(table, key)

    def _future(self, table: dict[str, list[asyncio.Future]], key: str) -> asyncio.Future:
        # Awaited directly (no shield: each hop between futures costs a loop turn, long on a busy
        # worker); a caller cancelled meanwhile leaves its future done, which `_resolve` skips.
        fut = asyncio.get_running_loop().create_future()
        table.setdefault(key, []).append(fut)
        self._kick()
        return fut

    def _down_now(self) -> None:
        if not self.broker.ok:
            raise BrokerDown(f"the broker is down ({self.broker.error}); the write waits for it")

    def _kick(self) -> None:
        """Send what is due at the next loop turn (everything asked in this one joins it)."""
        if not self._scheduled:
            self._scheduled = True
            self._spawn(self._send())

    def _health_changed(self, ok: bool, error: str | None) -> None:
        if ok and self._pending:
            self._kick()
        elif not ok:
            self._fail(BrokerDown(f"the broker is down ({error})"))

    async def _send(self) -> None:
        """One batch of writes and one of reads, sent from this task (the writes in it, the reads
        in a task of their own)."""
        self._scheduled = False
        if not self.broker.ok:
            self._fail(BrokerDown(f"the broker is down ({self.broker.error})"))
            return
        if self._reads:
            reads, self._reads = self._reads, {}
            self._spawn(self._read_batch(reads))
        batch = {k: v for k, v in self._pending.items() if k not in self._inflight}
        if batch:
            for k in batch:
                del self._pending[k]
            self._inflight.update(batch)
            waiters = {k: self._waiters.pop(k, []) for k in batch}
            await self._write_batch(batch, waiters)

    def _spawn(self, coro) -> None:
        t = asyncio.ensure_future(coro)
        self._tasks.add(t)
        t.add_done_callback(self._tasks.discard)

    async def _write_batch(self, batch: dict[str, bytes], waiters: dict[str, list]) -> None:
        try:
            await self.broker.set_many(batch, self.ttl_s)
        except Exception as e:
            if not isinstance(e, BrokerDown):  # pragma: no cover - a bug must not lose writes
                log.exception("broker: a batch of %d writes failed", len(batch))
            for k, v in batch.items():
                self._pending.setdefault(k, v)  # a newer value set meanwhile wins
                self._waiters.setdefault(k, [])[:0] = waiters[k]
            self._inflight.difference_update(batch)
            if self.broker.ok and isinstance(e, BrokerDown):
                self._kick()  # busy, not down: retry, the callers still waiting
            else:
                self._fail(e)
            return
        self._inflight.difference_update(batch)
        self.batches += 1
        self.keys += len(batch)
        for futs in waiters.values():
            _resolve(futs, None)
        if any(k in self._pending for k in batch):
            self._kick()  # values set while these were in flight

    async def _read_batch(self, reads: dict[str, list[asyncio.Future]]) -> None:
        keys = list(reads)
        try:
            values = await self.broker.get_many(keys)
        except BrokerDown:
            for k, futs in reads.items():
                self._reads.setdefault(k, [])[:0] = futs
            if self.broker.ok:
                self._kick()
            else:
                self._fail(BrokerDown(f"the broker is down ({self.broker.error})"))
            return
        for k, value in zip(keys, values):
            _resolve(reads[k], value)

    def _fail(self, e: BaseException) -> None:
        """Tell every waiting caller (the values not yet written stay, for when it is back)."""
        waiters = [f for futs in self._waiters.values() for f in futs]
        waiters += [f for futs in self._reads.values() for f in futs]
        self._waiters, self._reads = {}, {}
        for fut in waiters:
            if not fut.done():
                fut.set_exception(BrokerDown(str(e)) if isinstance(e, BrokerDown) else e)


def _resolve(futs: list[asyncio.Future], value) -> None:
    for fut in futs:
        if not fut.done():
            fut.set_result(value)


__all__ = ["KeyWriter"]
