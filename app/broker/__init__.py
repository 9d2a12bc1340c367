"""The broker: how workers (processes, machines) share rooms and session recipes.

    Broker          the interface (base.py): pub/sub of bytes on named channels, and keys
    MemoryBroker    in-process (the default: `make run` needs nothing else); one worker only
    RedisBroker     Redis (`PLAYGROUND_BROKER=redis://host:port/0`), the `redis` package's asyncio client
    KeyWriter       (writer.py) batches the key writes and reads of one loop turn into one round trip

`make_broker(settings)` picks one from `PLAYGROUND_BROKER`. What travels through it is in
app/rooms.py (room frames, viewer input, recipes); the broker knows nothing of sessions.
"""

from __future__ import annotations

from .base import Broker, BrokerDown, Unsubscribe
from .memory import MemoryBroker


def make_broker(url: str) -> Broker:
    """An empty URL is the in-process broker; `redis://...` (or `rediss://`, `unix://`) is Redis."""
    if not url or url == "memory":
        return MemoryBroker()
    if url.split(":", 1)[0] in ("redis", "rediss", "unix"):
        from .redis import RedisBroker

        return RedisBroker(url)
    raise ValueError(f"PLAYGROUND_BROKER: {url[:80]!r} is not a broker URL (leave it empty for the "
                     "in-process broker, or give redis://host:port/0)")


__all__ = ["Broker", "BrokerDown", "MemoryBroker", "Unsubscribe", "make_broker"]
