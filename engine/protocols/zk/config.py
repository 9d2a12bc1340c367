"""The ZooKeeper ensemble's configuration: one strict model, units last.

Timings follow the ZooKeeper Administrator's Guide ("Minimum Configuration", "Advanced
Configuration"): `tick_ms` is tickTime; a follower that hears nothing from its leader for
`sync_limit_ticks` ticks (randomised up to twice that, from the node's RNG) goes back to looking, and
so does a leader that does not hear from a quorum within that long; discovery and synchronisation
must finish within `init_limit_ticks`. A client asks for `session_timeout_ms`; the server grants a
timeout between 2 and 20 ticks (Programmer's Guide, "ZooKeeper Sessions": "the server will grant a
timeout between 2 and 20 times tickTime").
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator, model_validator

from ...validation import Strict
from .actions import check_znode_path
from .tree import INITIAL, parent_of

MUTATIONS = {
    "no_fencing": "The storage service accepts a write whatever its fencing token: a lock holder "
    "paused past its session timeout overwrites its successor's data (Kleppmann, 2016).",
    "herd_watch": "Every lock waiter watches the lock's parent (getChildren with a watch) instead of "
    "the next lower node: each release wakes them all (the recipes page's herd effect).",
    "expire_without_quorum": "A server expires a silent session of its own clients alone, without a "
    "replicated transaction: it deletes the ephemerals in its tree only.",
    "propose_to_acked_only": "The leader sends PROPOSE only to followers it has seen ACKLD from: a "
    "follower synchronising meanwhile misses an entry for good (a bug model checking found in the "
    "Zab spec's reading of the paper).",
}

Mutation = Literal["no_fencing", "herd_watch", "expire_without_quorum", "propose_to_acked_only"]


MAX_INITIAL_ZNODES = 64  # config.initial_tree's entries


class InitialZnode(Strict):
    """A persistent znode present from the start: its `data`, and `cversion`, the counter that
    names its next sequential child (a lock parent with cversion 33 has had 33 sequential children
    before: the next lock node is `...-lock-0000000033`)."""

    data: str = Field("", max_length=32)
    cversion: int = Field(0, ge=0, le=1_000_000_000, strict=True)


class ZkConfig(Strict):
    """An ensemble (the scenario's `nodes` servers), `clients` application processes c1.. and a
    storage service `st`. With `auto`, each client loops: take the lock (or, with recipe
    "election", become active), write to the storage with its token, hold it `hold_ms`, release,
    wait up to `think_ms_max`."""

    clients: int = Field(3, ge=0, le=20, strict=True)
    tick_ms: float = Field(50.0, gt=0, le=10_000, strict=True)
    init_limit_ticks: int = Field(10, ge=1, le=100, strict=True)
    sync_limit_ticks: int = Field(5, ge=1, le=100, strict=True)
    session_timeout_ms: float = Field(400.0, gt=0, le=600_000, strict=True)
    finalize_wait_ms: float = Field(40.0, ge=0, le=60_000, strict=True)  # FLE's finalizeWait
    notify_ms: float = Field(100.0, gt=0, le=60_000, strict=True)  # re-send votes while looking
    diff_limit: int = Field(100, ge=0, le=100_000, strict=True)  # further behind: SNAP
    recipe: Literal["lock", "election", "group"] = "lock"
    auto: bool = Field(True, strict=True)
    hold_ms: float = Field(60.0, ge=0, le=600_000, strict=True)
    think_ms_max: float = Field(150.0, ge=0, le=600_000, strict=True)
    # A client's only server, as a connect string naming one server: {"c1": "n1"} (lessons).
    home: dict[str, str] = {}
    mutations: tuple[Mutation, ...] = ()
    # The data tree every server starts with, beyond /lock and /election (which it may give data
    # or a cversion): {"/lock": {"cversion": 33}}. Each node's parent is / or another of these.
    initial_tree: dict[str, InitialZnode] | None = None

    @field_validator("initial_tree")
    @classmethod
    def _tree(cls, v: dict[str, InitialZnode] | None) -> dict[str, InitialZnode] | None:
        if v is None:
            return v
        if len(v) > MAX_INITIAL_ZNODES:
            raise ValueError(f"{len(v)} znodes: at most {MAX_INITIAL_ZNODES} (every server's "
                             "tree, and every snapshot of the world, holds them)")
        for path in v:
            check_znode_path(path)
            par = parent_of(path)
            if par != "/" and par not in v and par not in INITIAL:
                raise ValueError(f"{path}: its parent {par} is neither / nor in the initial tree")
        return v

    @field_validator("mutations")
    @classmethod
    def _sorted_once(cls, v: tuple[str, ...]) -> tuple[str, ...]:
        return tuple(sorted(set(v)))

    @model_validator(mode="after")
    def _limits(self) -> "ZkConfig":
        return self

    # --- derived (microseconds) -------------------------------------------------------------------
    def tick_us(self) -> int:
        return int(self.tick_ms * 1000)

    def negotiate_timeout_ms(self, asked_ms: float) -> float:
        """The granted session timeout: `asked_ms` clamped to 2..20 ticks."""
        return min(max(asked_ms, 2 * self.tick_ms), 20 * self.tick_ms)

    def has(self, mutation: str) -> bool:
        return mutation in self.mutations
