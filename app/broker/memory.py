"""The in-process broker: channels and keys in this process's memory (one worker sees them)."""

from __future__ import annotations

import asyncio
import time

from .base import Broker, Callback, Unsubscribe, remove_callback


class MemoryBroker(Broker):
    kind = "memory"
    shared = False

    def __init__(self) -> None:
        super().__init__()
        self._subs: dict[str, list[Callback]] = {}
        self._keys: dict[str, tuple[bytes, float | None]] = {}

    async def publish(self, channel: str, data: bytes) -> None:
        # Delivered on a later turn of the loop, in order, as a networked broker would: a
        # publisher never runs its subscribers' code inside its own call.
        subs = self._subs.get(channel)
        if subs:
            loop = asyncio.get_running_loop()
            for cb in list(subs):
                loop.call_soon(_deliver, cb, data)

    async def subscribe(self, channel: str, callback: Callback) -> Unsubscribe:
        self._subs.setdefault(channel, []).append(callback)

        async def unsubscribe() -> None:
            remove_callback(self._subs, channel, callback)

        return unsubscribe

    async def set(self, key: str, value: bytes, ttl_s: float | None = None) -> None:
        self._keys[key] = (bytes(value), None if ttl_s is None else time.monotonic() + ttl_s)

    async def get(self, key: str) -> bytes | None:
        item = self._keys.get(key)
        if item is None:
            return None
        value, expires = item
        if expires is not None and time.monotonic() >= expires:
            del self._keys[key]
            return None
        return value

    async def expire(self, key: str, ttl_s: float) -> bool:
        value = await self.get(key)
        if value is None:
            return False
        self._keys[key] = (value, time.monotonic() + ttl_s)
        return True

    async def delete(self, key: str) -> None:
        self._keys.pop(key, None)

    def channels(self) -> int:
        return len(self._subs)


def _deliver(cb: Callback, data: bytes) -> None:
    try:
        cb(data)
    except Exception:  # pragma: no cover - a subscriber's bug must not stop the others
        import logging

        logging.getLogger("playground.broker").exception("broker subscriber failed")


__all__ = ["MemoryBroker"]
