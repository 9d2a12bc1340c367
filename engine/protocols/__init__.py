"""The protocol registry: one `ProtocolSpec` per protocol, the only place that knows the protocol.

The kernel, the scenario envelope, the nemesis, the runner and the transcript are generic; each asks
the spec of the scenario's protocol for what only the protocol knows (TigerBeetle's packet
simulator works for any packet type through a small vtable: this is ours):

    name            "raft"
    config_model    the strict pydantic model of the scenario's `config`
    topology        topology(scenario) -> Topology: which nodes exist, their kind, which links are
                    drawn (a full mesh of servers for consensus; client -> balancer -> backends
                    for load balancing)
    node_factories  {kind: factory(nid, topology, config, rng, persistent) -> Node}
    make_checkers   make_checkers(seed, topology, config) -> [Checker]
    invariants      ((name, one sentence), ...) of those checkers
    actions         the protocol's action models (`engine.actions.ProtocolAction` subclasses),
                    routed by the kernel to the `on_command` of the node they name
    mutations       {name: sentence}: deliberate bugs, off by default, switched on in the config
    liveness        liveness(topology, heal_ms, config) -> LivenessMeasure, or None
    words           `Words`: the transcript's words for the protocol's messages and records
    nemesis_targets {name: pick(world) -> [node ids]}: what the nemesis may aim at (the first)
    record_types    record types the protocol adds to the trace (beyond the kernel's and the
                    workload's)
    workloads       workload kinds it accepts (`engine/workloads/`); the first is the default
    upgrade         upgrade(scenario dict) -> dict: older scenario shapes of this protocol, or None
    header_config   header_config(scenario) -> dict: what the trace header's `config` says beyond
                    the scenario's config (Paxos: the quorum sizes in force), or None
    ops_grow_state  whether the workload's operations make the world's state grow (True: client
                    histories that feed a linearizability check, logs); False for a protocol whose
                    state stays bounded however many operations it serves (its observers keep
                    bounded windows, finished requests are forgotten). The browser caps a replay's
                    operations only for the first kind; both are bounded by their events.

Adding a protocol is a folder here (`engine/protocols/<name>/__init__.py` defining `PROTOCOL`)
and one line in `REGISTRY`.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping

DEFAULT_PROTOCOL = "raft"  # a scenario without "protocol" (every scenario before the registry)

# name -> the module (relative to this package) whose `PROTOCOL` is the spec, imported on first use
REGISTRY: dict[str, str] = {
    "raft": ".raft",
    "paxos": ".paxos",
    "lb": ".lb",
    "zk": ".zk",
    "chubby": ".chubby",
}
_loaded: dict[str, "ProtocolSpec"] = {}


@dataclass(frozen=True)
class Topology:
    """The nodes a run is made of (id and kind, in boot order) and the links the page draws.

    `entry` names the nodes the workload's clients talk to (every node unless given). Messages may
    travel between any two nodes; `links` is what is drawn and what `neighbours` reads."""

    nodes: tuple[tuple[str, str], ...]
    links: tuple[tuple[str, str], ...] = ()
    entry: tuple[str, ...] | None = None
    _kind: dict = field(init=False, repr=False, compare=False)
    _adjacent: dict = field(init=False, repr=False, compare=False)

    def __post_init__(self):
        kind = dict(self.nodes)
        adjacent: dict[str, set[str]] = {n: set() for n in kind}
        for a, b in self.links:
            adjacent[a].add(b)
            adjacent[b].add(a)
        order = {n: i for i, (n, _) in enumerate(self.nodes)}
        object.__setattr__(self, "_kind", kind)
        object.__setattr__(self, "_adjacent", {n: sorted(s, key=order.__getitem__)
                                               for n, s in adjacent.items()})
        if self.entry is None:
            object.__setattr__(self, "entry", tuple(kind))

    @property
    def ids(self) -> list[str]:
        return [n for n, _ in self.nodes]

    def kind(self, nid: str) -> str:
        return self._kind[nid]

    def of_kind(self, kind: str) -> list[str]:
        return [n for n, k in self.nodes if k == kind]

    def neighbours(self, nid: str) -> list[str]:
        """The nodes linked to `nid`, in topology order."""
        return list(self._adjacent[nid])

    def as_dict(self) -> dict:
        return {"nodes": [list(n) for n in self.nodes], "links": [list(x) for x in self.links],
                "entry": list(self.entry)}

    @staticmethod
    def mesh(ids: list[str], kind: str = "server") -> "Topology":
        """Every node of one kind linked to every other (a consensus cluster)."""
        return Topology(tuple((n, kind) for n in ids),
                        tuple((a, b) for i, a in enumerate(ids) for b in ids[i + 1:]))


def mesh_topology(scenario) -> Topology:
    """`nodes` servers n1..nN in a full mesh. A protocol using it takes no `topology` field."""
    if scenario.topology is not None:
        raise ValueError(f"topology: {scenario.protocol} runs a full mesh of servers; give "
                         f"'nodes' (a number) instead")
    return Topology.mesh([f"n{i}" for i in range(1, scenario.nodes + 1)])


@dataclass(frozen=True)
class Words:
    """How a transcript tells a protocol's run: `message(msg)` for a `send` record's message, and
    `records[type](rec)` for each other record type the protocol or its workload emits (the text
    after the time column; None to leave a record out)."""

    message: Callable[[dict], str]
    records: Mapping[str, Callable[[dict], str | None]]


@dataclass(frozen=True, eq=False)
class ProtocolSpec:
    name: str
    config_model: type
    topology: Callable[[Any], Topology]
    node_factories: Mapping[str, Callable[..., Any]]
    make_checkers: Callable[[int, Topology, Any], list]
    invariants: tuple[tuple[str, str], ...] = ()
    actions: tuple[type, ...] = ()
    mutations: Mapping[str, str] = field(default_factory=dict)
    liveness: Callable[[Topology, float, Any], Any] | None = None
    words: Words | None = None
    nemesis_targets: Mapping[str, Callable[[Any], list[str]]] = field(default_factory=dict)
    record_types: tuple[str, ...] = ()
    workloads: tuple[str, ...] = ()
    upgrade: Callable[[dict], dict] | None = None
    header_config: Callable[[Any], dict] | None = None
    measures: Mapping[str, type] = field(default_factory=dict)  # engine/measures.py
    ops_grow_state: bool = True

    def __reduce_ex__(self, protocol):
        # A registered spec pickles as its name: snapshots stay small and a restored world shares
        # the registry's spec (and its cached validators).
        if _loaded.get(self.name) is self:
            return (get_protocol, (self.name,))
        return super().__reduce_ex__(protocol)


def known_protocols() -> list[str]:
    return sorted(REGISTRY)


def get_protocol(name: str) -> ProtocolSpec:
    if not isinstance(name, str) or name not in REGISTRY:
        raise ValueError(f"unknown protocol {name!r} (known: {', '.join(known_protocols())})")
    spec = _loaded.get(name)
    if spec is None:
        spec = _loaded[name] = importlib.import_module(REGISTRY[name], __name__).PROTOCOL
    return spec


__all__ = ["DEFAULT_PROTOCOL", "REGISTRY", "ProtocolSpec", "Topology", "Words", "get_protocol",
           "known_protocols", "mesh_topology"]
