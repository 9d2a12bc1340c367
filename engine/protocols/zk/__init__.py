"""ZooKeeper: an ensemble of servers running Zab (server.py, on zab.py's zxids, votes and FIFO
channels), the data tree (tree.py), application processes running the recipes (client.py), the
storage service that checks fencing tokens (storage.py), its config (config.py), actions
(actions.py), checkers (checkers.py), liveness (liveness.py), sweep measures (measures.py), words
(words.py) and its
registration.

Topology: servers n1..nN (the scenario's `nodes`) in a full mesh, clients c1..cK (`config.clients`)
and the storage service `st`, drawn linked to every client. Every node is the protocol's, so the
generic faults and the nemesis reach clients and storage too (a client paused past its session
timeout is the Kleppmann scenario).
"""

from __future__ import annotations

from ...validation import ScenarioError
from .. import ProtocolSpec, Topology
from .actions import ZK_ACTIONS
from .checkers import ZK_INVARIANTS, make_checkers
from .client import ZkClient
from .config import MUTATIONS, ZkConfig
from .liveness import EstablishedAfterHeal
from .measures import ZK_MEASURES
from .server import BROADCAST, LEADING, ZabServer
from .storage import Storage
from .words import ZK_WORDS

STORAGE = "st"


def topology(scenario) -> Topology:
    if scenario.topology is not None:
        raise ScenarioError("topology: zk takes 'nodes' (the number of servers) and "
                            "config.clients, not a topology")
    if not 1 <= scenario.nodes <= 9:
        raise ScenarioError(f"nodes: an ensemble has 1 to 9 servers (3, 5 or 7 in lessons), "
                            f"not {scenario.nodes}")
    servers = [f"n{i}" for i in range(1, scenario.nodes + 1)]
    clients = [f"c{i}" for i in range(1, scenario.config.clients + 1)]
    for c, n in scenario.config.home.items():
        if c not in clients or n not in servers:
            raise ScenarioError(f"config.home.{c}: names a client c1..c{len(clients)} and a server "
                                f"n1..n{len(servers)} (got {n!r})")
    return service_topology(servers, clients)


def service_topology(servers: list[str], clients: list[str]) -> Topology:
    """A coordination service: its servers in a full mesh, the client processes, and the storage
    service `st` drawn linked to every client (Chubby's cell uses it too)."""
    mesh = Topology.mesh(servers)
    nodes = mesh.nodes + tuple((c, "client") for c in clients) + ((STORAGE, "storage"),)
    links = mesh.links + tuple((c, STORAGE) for c in clients)
    return Topology(nodes, links, entry=tuple(servers))


def established_leader(world) -> list[str]:
    """What the nemesis aims at: the established leader."""
    out = []
    for nid in world.topology.of_kind("server"):
        node = world.nodes[nid]
        if world.status[nid] == "up" and node.role == LEADING and node.phase == BROADCAST:
            out.append(nid)
    return out


PROTOCOL = ProtocolSpec(
    name="zk",
    config_model=ZkConfig,
    topology=topology,
    node_factories={"server": ZabServer, "client": ZkClient, "storage": Storage},
    make_checkers=make_checkers,
    invariants=ZK_INVARIANTS,
    actions=ZK_ACTIONS,
    mutations=MUTATIONS,
    liveness=EstablishedAfterHeal,
    measures=ZK_MEASURES,
    words=ZK_WORDS,
    nemesis_targets={"leader": established_leader},
    record_types=("txn", "session", "watch", "write", "read", "op"),
)
