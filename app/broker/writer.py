"""Group commit of key writes: the writes of one event-loop turn go to the broker together.

A session's frame waits for its recipe to be in the broker (so that a worker killed then cannot
lose a click the page has seen). One round trip per write made every click pay a round trip and a
pool checkout on a busy loop; `KeyWriter` instead gathers every `set` made while no batch is being
written (one loop turn, or the time the previous batch took) and writes them as one
`Broker.set_many`: one round trip for many sessions. Each caller returns when the batch holding
its value (or a later value of the same key) is acknowledged.

Order per key: one batch is in flight at a time and a batch holds only the latest value of each
key, so a later value is never overwritten by an earlier one (no version check is needed in the
broker). A batch that only ran out of time (the broker is busy, not down) is retried with its
waiters still waiting; when the broker is down the waiters get `BrokerDown` (their pages are told)
and the values stay here, written as soon as the broker is healthy again: a write is never
dropped, only delayed. While the broker is known to be down, `set` does not wait (a dead broker
must not stall the pages' streams).
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
        self._pending: dict[str, bytes] = {}  # key -> its latest value not yet written
        self._waiters: list[asyncio.Future] = []  # callers whose value is in `_pending`
        self._task: asyncio.Task | None = None
        self.batches = 0  # batches written (round trips), for the stats
        self.keys = 0  # values written in them
        broker.on_health(self._health_changed)

    async def set(self, key: str, value: bytes) -> None:
        """Write `value` under `key` with the next batch; returns once it is acknowledged.
        Raises `BrokerDown` when the broker is down (the value is then written when it is back)."""
        self._pending[key] = value
        if not self.broker.ok:
            raise BrokerDown(f"the broker is down ({self.broker.error}); the write waits for it")
        fut = asyncio.get_running_loop().create_future()
        self._waiters.append(fut)
        self._kick()
        await asyncio.shield(fut)

    def pending(self) -> int:
        return len(self._pending)

    def _kick(self) -> None:
        if self._task is None or self._task.done():
            self._task = asyncio.ensure_future(self._flush())

    def _health_changed(self, ok: bool, error: str | None) -> None:
        if ok and self._pending:
            self._kick()

    async def _flush(self) -> None:
        """Write batches, one at a time, while there is something to write and the broker is up."""
        while self._pending and self.broker.ok:
            batch, self._pending = self._pending, {}
            waiters, self._waiters = self._waiters, []
            try:
                await self.broker.set_many(batch, self.ttl_s)
            except BrokerDown as e:
                for key, value in batch.items():
                    self._pending.setdefault(key, value)  # a newer value written since wins
                if self.broker.ok:  # busy, not down: the waiters wait for the retry
                    self._waiters[:0] = waiters
                    continue
                for fut in waiters:
                    if not fut.done():
                        fut.set_exception(BrokerDown(str(e)))
                break
            except Exception as e:  # pragma: no cover - a bug must not leave callers waiting
                log.exception("broker: a batch of %d writes failed", len(batch))
                for fut in waiters:
                    if not fut.done():
                        fut.set_exception(e)
                break
            self.batches += 1
            self.keys += len(batch)
            for fut in waiters:
                if not fut.done():
                    fut.set_result(None)
        # Callers left waiting here (the broker went down between their `set` and this batch).
        if not self.broker.ok and self._waiters:
            waiters, self._waiters = self._waiters, []
            for fut in waiters:
                if not fut.done():
                    fut.set_exception(BrokerDown(f"the broker is down ({self.broker.error})"))


__all__ = ["KeyWriter"]
