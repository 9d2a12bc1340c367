"""The ZooKeeper playground's actions (the generic faults are not ZooKeeper's), each aimed at a
client process c1..:

    acquire (`node`)            start the recipe: take the lock (or stand for election)
    release (`node`)            give the lock up (delete the lock node)
    write (`node`, `value`?)    write to the storage service with the token the client believes in
    read (`node`, `path`, `sync`) list a znode's children, from the client's server or after sync

and the client API itself (the Programmer's Guide, "ZooKeeper operations"), each answered by an
`op` record:

    create (`node`, `path`, `data`, `ephemeral`, `sequential`)
    delete (`node`, `path`, `version`)            version -1: any version
    set (`node`, `path`, `data`, `version`)       setData
    get (`node`, `path`, `watch`, `sync`)         getData; `watch`: a one-time data watch
    get_children (`node`, `path`, `watch`, `sync`) a one-time children watch
    exists (`node`, `path`, `watch`, `sync`)      a data watch, set even if the node is missing
    close (`node`)                                closeSession: its ephemerals go, it is gone

Writes go through the leader; reads are served by the client's own server (maybe stale), after a
`sync` with the leader when `sync` is true.
"""

from __future__ import annotations

import re
from typing import Literal

from pydantic import Field, field_validator, model_validator

from ...actions import Need, ProtocolAction
from ...validation import ScenarioError

MAX_NAME = 40  # characters in a znode's name
SEQ_DIGITS = 10  # a sequential node's suffix (%010d)
ZNODE_PATH = re.compile(r"^(/[A-Za-z0-9_-]{1,%d}){1,5}$" % MAX_NAME)


def check_znode_path(v: str) -> str:
    """A znode's path: /name, up to 5 levels, names of letters, digits, _ and - (not the root)."""
    if not ZNODE_PATH.match(v):
        raise ValueError(f"{v!r} is not a znode path such as /data or /lock/x (1 to 5 names of "
                         "letters, digits, _ and -, each after a /; not / itself, no trailing /)")
    return v


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


class Close(_ClientAction):
    """The client process closes its session (ZooKeeper's closeSession; Chubby's §2.8): its
    ephemeral nodes (or locks) go at once; it does not reconnect, and a later `acquire` (or, on
    ZooKeeper, any operation) opens a new session."""

    do: Literal["close"]
    node: str


class _Op(_ClientAction):
    """One call of the client API, answered by an `op` record."""

    node: str
    path: str

    @field_validator("path")
    @classmethod
    def _path(cls, v: str) -> str:
        return check_znode_path(v)


class Create(_Op):
    """create(path, data, flags): a persistent node unless `ephemeral` (it belongs to the session);
    `sequential` appends the parent's counter as a %010d suffix."""

    do: Literal["create"]
    data: str = Field("", max_length=32)
    ephemeral: bool = Field(False, strict=True)
    sequential: bool = Field(False, strict=True)

    @model_validator(mode="after")
    def _room_for_the_suffix(self) -> "Create":
        name = self.path.rsplit("/", 1)[1]
        if self.sequential and len(name) > MAX_NAME - SEQ_DIGITS:
            raise ValueError(f"path: a sequential node's name takes a {SEQ_DIGITS}-digit suffix, "
                             f"so {name!r} may have at most {MAX_NAME - SEQ_DIGITS} characters "
                             f"(every call takes names of up to {MAX_NAME}), not {len(name)}")
        return self


class Delete(_Op):
    """delete(path, version): refused with BadVersion unless `version` is the node's (-1: any),
    with NotEmpty while it has children, NoNode when it is missing."""

    do: Literal["delete"]
    version: int = Field(-1, ge=-1, le=1_000_000_000, strict=True)


class SetData(_Op):
    """setData(path, data, version): refused with BadVersion unless `version` is the node's (-1:
    any); the node's version goes up by one."""

    do: Literal["set"]
    data: str = Field("", max_length=32)
    version: int = Field(-1, ge=-1, le=1_000_000_000, strict=True)


class _ReadOp(_Op):
    watch: bool = Field(False, strict=True)
    sync: bool = Field(False, strict=True)


class GetData(_ReadOp):
    """getData(path, watch): the data and version as the client's server has them; `watch` leaves
    a one-time data watch (fired by a set or delete of the node)."""

    do: Literal["get"]


class GetChildren(_ReadOp):
    """getChildren(path, watch): `watch` leaves a one-time children watch (fired by a child's
    create or delete, or the node's own delete)."""

    do: Literal["get_children"]


class Exists(_ReadOp):
    """exists(path, watch): `watch` leaves a one-time data watch even when the node is missing
    (fired by its create)."""

    do: Literal["exists"]


ClientAction = _ClientAction  # an action aimed at a client process
OPS = (Create, Delete, SetData, GetData, GetChildren, Exists)
ZK_ACTIONS = (Acquire, Release, Write, Read) + OPS + (Close,)
