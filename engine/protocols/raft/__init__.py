"""Raft: the node (node.py), its config (config.py), actions (actions.py), safety checkers
(checkers.py), liveness measure (liveness.py), transcript words (words.py), and its registration."""

from __future__ import annotations

from ...checkers.linearizability import LinearizabilityChecker
from ...workloads.kv import Request
from .. import ProtocolSpec, mesh_topology
from .actions import Heartbeat, Lag, Timeout, Transfer
from .checkers import RAFT_INVARIANTS, make_raft_checkers
from .config import MUTATIONS, RaftConfig, upgrade
from .liveness import LeaderAfterHeal
from .measures import BroadcastTime, ElectionDowntime
from .measures_lab import RAFT_LAB_MEASURES
from .node import LEADER, RaftNode
from .words import RAFT_WORDS


def make_server(nid, topology, config, rng, persistent=None) -> RaftNode:
    return RaftNode(nid, topology.neighbours(nid), config, rng, persistent)


def make_checkers(seed: int, topology, config) -> list:
    servers = topology.of_kind("server")
    return make_raft_checkers(seed, servers) + [LinearizabilityChecker(seed, servers)]


def leaders(world) -> list[str]:
    """The servers that believe they lead (what the nemesis likes to crash, pause or isolate)."""
    return [n for n in world.servers if world.status[n] != "down" and world.nodes[n].role == LEADER]


PROTOCOL = ProtocolSpec(
    name="raft",
    config_model=RaftConfig,
    topology=mesh_topology,
    node_factories={"server": make_server},
    make_checkers=make_checkers,
    invariants=RAFT_INVARIANTS + ((LinearizabilityChecker.name, LinearizabilityChecker.explains),),
    actions=(Request, Transfer, Timeout, Heartbeat, Lag),
    mutations=MUTATIONS,
    liveness=LeaderAfterHeal,
    words=RAFT_WORDS,
    nemesis_targets={"leader": leaders},
    workloads=("kv",),
    upgrade=upgrade,
    measures={**RAFT_LAB_MEASURES, ElectionDowntime.name: ElectionDowntime,
              BroadcastTime.name: BroadcastTime},
)
