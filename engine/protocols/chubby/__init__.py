"""Chubby (Burrows, "The Chubby lock service for loosely-coupled distributed systems", OSDI 2006):
a cell of replicas running Multi-Paxos (engine/protocols/paxos/) with a master lease, the
replicated lock database (db.py), the master's sessions and lock queue (server.py), application
processes with the client library's sessions, jeopardy and grace period (client.py), its config
(config.py), actions (actions.py), checkers (checkers.py), liveness (liveness.py), words
(words.py) and its registration.

From ZooKeeper's folder it reuses the service topology (servers n1..nN in a full mesh, clients
c1..cK, the storage `st` drawn linked to every client), the fencing storage service (storage.py:
a sequencer's generation is its token), the recipe actions and the checkers whose invariant is the
same. Every node is the protocol's, so the generic faults and the nemesis reach clients and the
storage too (a client paused past its session lease).
"""

from __future__ import annotations

from ...validation import ScenarioError
from .. import ProtocolSpec, Topology
from ..zk import service_topology
from ..zk.storage import Storage
from .actions import CHUBBY_ACTIONS
from .checkers import CHUBBY_INVARIANTS, make_checkers
from .client import ChubbyClient
from .config import LOCK, MUTATIONS, ChubbyConfig
from .liveness import MasterAfterHeal
from .server import MASTER, ChubbyServer
from .words import CHUBBY_WORDS


class ChubbyStorage(Storage):
    """The storage service Chubby's lock protects: it checks each sequencer's lock name and mode,
    and fences by its generation number (Burrows 2006, §2.4)."""

    guards = LOCK


def topology(scenario) -> Topology:
    if scenario.topology is not None:
        raise ScenarioError("topology: chubby takes 'nodes' (the number of replicas) and "
                            "config.clients, not a topology")
    if scenario.nodes not in (3, 5):
        raise ScenarioError(f"nodes: a Chubby cell has 3 or 5 replicas (five in the paper, "
                            f"§2.1), not {scenario.nodes}")
    return service_topology([f"n{i}" for i in range(1, scenario.nodes + 1)],
                            [f"c{i}" for i in range(1, scenario.config.clients + 1)])


def master(world) -> list[str]:
    """What the nemesis aims at: the serving master."""
    return [nid for nid in world.topology.of_kind("server")
            if world.status[nid] == "up" and world.nodes[nid].role == MASTER]


PROTOCOL = ProtocolSpec(
    name="chubby",
    config_model=ChubbyConfig,
    topology=topology,
    node_factories={"server": ChubbyServer, "client": ChubbyClient, "storage": ChubbyStorage},
    make_checkers=make_checkers,
    invariants=CHUBBY_INVARIANTS,
    actions=CHUBBY_ACTIONS,
    mutations=MUTATIONS,
    liveness=MasterAfterHeal,
    words=CHUBBY_WORDS,
    nemesis_targets={"master": master},
    record_types=("txn", "session", "write"),
)
