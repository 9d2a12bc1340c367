"""Workloads: who uses the service, one module per kind, looked up by the scenario's
`workload.kind`.

A workload names its strict model (with a `kind` literal), the record types its clients add to the
trace, and `build(workload, topology, config)`, which lists the client nodes to add after the
topology's nodes, in boot order, as `(id, factory(nid, topology, config, rng, persistent))`. Each
client draws from its own RNG stream, `client:<id>`. A protocol says which kinds it accepts; the
first is its default, built even when the scenario has no workload (the key-value workload's
user client, which carries the user's `request` actions).

    kv          closed-loop key-value clients and the user's client (Raft, Multi-Paxos)
    open_loop   a Poisson arrival process with bursts, a rate schedule, costs, Zipf keys
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

from . import kv, open_loop


@dataclass(frozen=True)
class WorkloadSpec:
    kind: str
    model: type
    build: Callable[[Any, Any, Any], list[tuple[str, Callable[..., Any]]]]
    record_types: tuple[str, ...] = ()


WORKLOADS: dict[str, WorkloadSpec] = {
    "kv": WorkloadSpec("kv", kv.KvWorkload, kv.build, ("client",)),
    "open_loop": WorkloadSpec("open_loop", open_loop.OpenLoopWorkload, open_loop.build, ("request",)),
}


def get_workload(kind: str) -> WorkloadSpec:
    try:
        return WORKLOADS[kind]
    except (KeyError, TypeError):
        raise ValueError(f"unknown workload {kind!r} (known: {', '.join(sorted(WORKLOADS))})") from None


__all__ = ["WORKLOADS", "WorkloadSpec", "get_workload"]
