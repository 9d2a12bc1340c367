"""The broker interface: what a worker needs from whatever connects the workers.

Two kinds of thing go through it:

- **channels**: `publish(channel, data)` hands `data` (bytes) to every callback `subscribe`d to
  `channel`, on every worker, in the order published (per publisher). At most once: a worker that
  was not subscribed (or not connected) when a message went out never sees it.
- **keys**: `set(key, value, ttl_s)`, `get(key)`, `expire(key, ttl_s)`, `delete(key)`: small values (bytes) every worker
  can read, each expiring `ttl_s` seconds after it was last set; `set_many` sets several at once
  (one round trip on a networked broker; `KeyWriter` in writer.py batches writes into it).

Every operation either completes or raises `BrokerDown` (within `timeout_s`); `health()` says
whether the broker is reachable now, and `on_health(callback)` is told each time that changes.
"""

from __future__ import annotations

import abc
from typing import Awaitable, Callable

Callback = Callable[[bytes], None]
Unsubscribe = Callable[[], Awaitable[None]]


def remove_callback(subs: dict[str, list[Callback]], channel: str, callback: Callback) -> bool:
    """Take `callback` off `subs[channel]`; True when that leaves the channel with no subscriber
    (it is then forgotten)."""
    cbs = subs.get(channel)
    if not cbs or callback not in cbs:
        return False
    cbs.remove(callback)
    if cbs:
        return False
    del subs[channel]
    return True


class BrokerDown(Exception):
    """The broker cannot be reached; the message says why."""


class Broker(abc.ABC):
    kind: str = "?"
    shared: bool = False  # do other workers see what goes through it?

    def __init__(self) -> None:
        self.ok = True
        self.error: str | None = None
        self._health_listeners: list[Callable[[bool, str | None], None]] = []

    # --- lifecycle ---------------------------------------------------------------------------------
    async def start(self) -> None:  # noqa: B027 - optional
        """Connect (and start whatever background reader the broker needs)."""

    async def close(self) -> None:  # noqa: B027 - optional
        """Disconnect; subscriptions end."""

    # --- channels ----------------------------------------------------------------------------------
    @abc.abstractmethod
    async def publish(self, channel: str, data: bytes) -> None:
        """Hand `data` to every subscriber of `channel`."""

    async def publish_many(self, channel: str, items: list[bytes]) -> None:
        """`publish` each of `items` on `channel`, in order (a networked broker sends them in
        one round trip)."""
        for data in items:
            await self.publish(channel, data)

    @abc.abstractmethod
    async def subscribe(self, channel: str, callback: Callback) -> Unsubscribe:
        """Call `callback(data)` (on the event loop, never concurrently) for each message on
        `channel` from now on; the answer is an async function that ends the subscription."""

    # --- keys --------------------------------------------------------------------------------------
    @abc.abstractmethod
    async def set(self, key: str, value: bytes, ttl_s: float | None = None) -> None:
        """Store `value` under `key`, expiring `ttl_s` seconds from now (None: never)."""

    async def set_many(self, items: dict[str, bytes], ttl_s: float | None = None) -> None:
        """`set` each of `items` (key -> value), all with `ttl_s` (a networked broker sends them in
        one round trip)."""
        for key, value in items.items():
            await self.set(key, value, ttl_s)

    @abc.abstractmethod
    async def get(self, key: str) -> bytes | None:
        """The value under `key`, or None (never set, deleted or expired)."""

    async def get_many(self, keys: list[str]) -> list[bytes | None]:
        """`get` each of `keys`, in order (a networked broker asks in one round trip)."""
        return [await self.get(key) for key in keys]

    @abc.abstractmethod
    async def expire(self, key: str, ttl_s: float) -> bool:
        """`key` now expires `ttl_s` seconds from now; False when it is not there."""

    @abc.abstractmethod
    async def delete(self, key: str) -> None:
        """Forget `key` (nothing happens when it is not there)."""

    async def delete_if_starts(self, key: str, prefix: bytes) -> bool:
        """Forget `key` if its value starts with `prefix` (a networked broker checks and deletes
        in one step, so a value written meanwhile by another worker stays); whether it was."""
        value = await self.get(key)
        if value is None or not value.startswith(prefix):
            return False
        await self.delete(key)
        return True

    # --- health ------------------------------------------------------------------------------------
    async def health(self) -> dict:
        """`{"kind", "ok", "error"}`: is the broker reachable now."""
        return {"kind": self.kind, "ok": self.ok, "error": self.error}

    def on_health(self, callback: Callable[[bool, str | None], None]) -> None:
        """`callback(ok, error)` each time reachability changes."""
        self._health_listeners.append(callback)

    def _set_health(self, ok: bool, error: str | None = None) -> None:
        if ok == self.ok and (ok or error == self.error):
            return
        changed = ok != self.ok
        self.ok, self.error = ok, (None if ok else error)
        if changed:
            for cb in list(self._health_listeners):
                cb(ok, self.error)


__all__ = ["Broker", "BrokerDown", "Callback", "Unsubscribe"]
