"""Protocol adapters: how the web app shows one protocol (labels, node summaries, words, switches).

The session, the frame stream, the routes and the page's generic code are protocol-agnostic;
everything that knows a protocol's messages and fields lives in one adapter per protocol
(`base.Adapter` says what an adapter provides), looked up by the scenario's `protocol` field.
Adding a protocol is an adapter file here, one line in `ADAPTERS`, and a page module in
`static/js/protocols/` (registered in its `index.js`).
"""

from __future__ import annotations

from engine.protocols import DEFAULT_PROTOCOL, REGISTRY as ENGINE_REGISTRY

from .base import Adapter, live_workload
from .chubby import ChubbyAdapter
from .lb import LbAdapter
from .paxos import PaxosAdapter
from .raft import RaftAdapter
from .zk import ZkAdapter

ADAPTERS: dict[str, type[Adapter]] = {"raft": RaftAdapter, "paxos": PaxosAdapter, "lb": LbAdapter,
                                       "zk": ZkAdapter, "chubby": ChubbyAdapter}

_instances: dict[str, Adapter] = {}


def available() -> list[str]:
    """The protocols the page can open: those with an engine spec and an adapter."""
    return sorted(p for p in ADAPTERS if p in ENGINE_REGISTRY)


def get_adapter(protocol: str) -> Adapter:
    """The adapter of `protocol` (one shared instance: adapters hold no per-session state)."""
    a = _instances.get(protocol)
    if a is None:
        try:
            a = _instances[protocol] = ADAPTERS[protocol]()
        except (KeyError, TypeError):
            raise ValueError(f"protocol: unknown protocol {str(protocol)[:40]!r} "
                             f"(known: {', '.join(available())})") from None
    return a


__all__ = ["ADAPTERS", "DEFAULT_PROTOCOL", "Adapter", "available", "get_adapter", "live_workload"]
