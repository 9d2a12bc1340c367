"""The ZooKeeper playground's actions (the generic faults are not ZooKeeper's), each aimed at a
client process c1..:

    acquire (`node`)            start the recipe: take the lock (or stand for election)
    release (`node`)            give the lock up (delete the lock node)
    write (`node`, `value`?)    write to the storage service with the token the client believes in
    read (`node`, `path`, `sync`) list a znode's children, from the client's server or after sync
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from ...actions import Need, ProtocolAction
from ...validation import ScenarioError


class _ClientAction(ProtocolAction):
    def check_nodes(self, where: str, need: Need) -> None:
        node = self.__dict__["node"]
        need("node", node)
        if not (node.startswith("c") and node[1:].isdigit()):
            raise ScenarioError(f"{where}.node: {node} is not a client process (c1, c2, ...)")


class Acquire(_ClientAction):
    """The client starts the lock recipe (or, with recipe "election", stands for active)."""

    do: Literal["acquire"]
    node: str


class Release(_ClientAction):
    """The client deletes its lock node (and stops wanting the lock)."""

    do: Literal["release"]
    node: str


class Write(_ClientAction):
    """The client writes `value` to the storage service, with its fencing token."""

    do: Literal["write"]
    node: str
    value: str | None = Field(None, min_length=1, max_length=32)


class Read(_ClientAction):
    """The client lists `path`'s children, from its own server's tree (maybe stale), or after a
    `sync` with the leader when `sync` is true. Told as a `read` record."""

    do: Literal["read"]
    node: str
    path: str = Field("/lock", pattern=r"^/[A-Za-z0-9_/-]{0,60}$")
    sync: bool = False


ClientAction = _ClientAction  # an action aimed at a client process (Chubby's `close` is one)
ZK_ACTIONS = (Acquire, Release, Write, Read)
