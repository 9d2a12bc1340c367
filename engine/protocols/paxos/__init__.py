"""Paxos: single-decree ("basic", basic.py) and Multi-Paxos (multi.py) on shared acceptor and
learner roles (base.py); ballots (ballot.py), the config (config.py), actions (actions.py), the
checkers (checkers.py), the liveness measure (liveness.py), the sweep measure (measures.py),
words (words.py), and its
registration. Quorum arithmetic is engine/quorum.py, the key-value state machine engine/kvstore.py.

The mode is the config's: basic Paxos takes `propose` and no workload; Multi-Paxos serves the
key-value workload (its clients and the `request` action) exactly as Raft does.
"""

from __future__ import annotations

from ...validation import ScenarioError
from .. import ProtocolSpec, mesh_topology
from .actions import PAXOS_ACTIONS, check_mode
from .base import ACCEPTING, LEADING, PREPARING, PaxosNode
from .basic import BasicPaxosNode
from .checkers import PAXOS_INVARIANTS, make_checkers
from .config import MUTATIONS, PaxosConfig
from .liveness import ProgressAfterHeal
from .measures import PAXOS_MEASURES
from .multi import MultiPaxosNode
from .words import PAXOS_WORDS


def make_server(nid, topology, config: PaxosConfig, rng, persistent=None) -> PaxosNode:
    """A Paxos server of the configured mode."""
    cls = MultiPaxosNode if config.mode == "multi" else BasicPaxosNode
    return cls(nid, topology.neighbours(nid), config, rng, persistent)


def topology(scenario):
    """A full mesh of servers; the config's roles, proposals and quorum sizes must fit them, the
    workload and actions the mode (the envelope reports these errors with the field named)."""
    topo = mesh_topology(scenario)
    config: PaxosConfig = scenario.config
    try:
        config.check_nodes(topo.ids)
    except ValueError as e:
        raise ScenarioError(f"config.{e}") from None
    if config.mode == "basic" and scenario.workload is not None:
        raise ScenarioError("workload: basic Paxos takes no workload (the key-value clients are "
                            "Multi-Paxos's: config.mode \"multi\")")
    for i, a in enumerate(scenario.actions):
        if a.do in ("propose", "timeout", "request"):
            check_mode(a, config, f"actions[{i}]")
    return topo


def proposers(world) -> list[str]:
    """What the nemesis aims at: the Multi-Paxos leader, or a basic-Paxos proposer in a round."""
    out = []
    for nid in world.servers:
        node = world.nodes[nid]
        if world.status[nid] != "up":
            continue
        if node.phase == LEADING or (node.phase in (PREPARING, ACCEPTING)
                                     and isinstance(node, BasicPaxosNode)):
            out.append(nid)
    return out


def header_config(scenario) -> dict:
    """The trace header's `config` beyond the scenario's: the mode, the quorum sizes in force and
    `roles` when nodes play different roles."""
    return scenario.config.header(scenario.node_ids)


PROTOCOL = ProtocolSpec(
    name="paxos",
    config_model=PaxosConfig,
    topology=topology,
    node_factories={"server": make_server},
    make_checkers=make_checkers,
    invariants=PAXOS_INVARIANTS,
    actions=PAXOS_ACTIONS,
    mutations=MUTATIONS,
    liveness=ProgressAfterHeal,
    words=PAXOS_WORDS,
    nemesis_targets={"proposer": proposers},
    workloads=("kv",),
    header_config=header_config,
    measures=PAXOS_MEASURES,
)
