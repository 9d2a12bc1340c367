"""The node interface every protocol implements.

A node is a pure state machine (etcd/raft's shape): the kernel hands it a message or a timer firing
together with a `Context`, and the node answers only through that context: messages to send, timers
to set or cancel. It never sees the network, the clock or other nodes. Randomness comes from the RNG
stream it was built with.

Nodes come in kinds ("server", "client", later "balancer", "backend", "storage"); the kernel treats
them alike. A crash discards the object; a restart builds a new one from `persistent_state()`, so
volatile state is fresh by construction.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar

from ._mypyc import mypyc_attr

if TYPE_CHECKING:
    from .sim import Simulation


@mypyc_attr(allow_interpreted_subclasses=True, serializable=True)
class Context:
    """What a node may do while handling one input. Effects are applied by the kernel in order.

    The kernel hands nodes its own subclass (`engine.sim.KernelContext`), which takes the common
    cases without a detour; the methods here are the general paths and the interface.
    """

    def __init__(self, sim: Simulation, node_id: str, now_us: int):
        self._sim = sim
        self.node_id = node_id
        self.now_us = now_us
        # Whether anyone reads the node's `records` now (a trace, a checker, a page). When nobody
        # does, the kernel throws them away unread, so a node may skip building them; it must not
        # decide anything else by it (a run is the same whoever watches).
        self.recording = True

    def send(self, to: str, msg: dict) -> None:
        self._sim._send(self.node_id, to, msg)

    def set_timer(self, name: str, delay_us: int) -> None:
        """(Re)arm the named timer (integer microseconds): a timer with the same name is replaced."""
        self._sim._set_timer(self.node_id, name, delay_us)

    def cancel_timer(self, name: str) -> None:
        self._sim._cancel_timer(self.node_id, name)

    def persist(self) -> None:
        """Say that `persistent_state()` changed and must reach stable storage before anything
        the node sends from now on leaves it (engine/storage.py). Call it after the change, before
        the messages that depend on it; without a storage latency it does nothing."""
        if self._sim.disk is not None:
            self._sim._persist(self.node_id)

    def send_now(self, to: str, msg: dict) -> None:
        """Send a message that does not depend on the node's pending writes: it leaves at once
        even while a write is in flight (engine/storage.py). Only for a message whose sender does
        not rely on the write until it completes (see `Node.on_written`); otherwise `send`."""
        self._sim._send(self.node_id, to, msg)

    def write_pending(self) -> bool:
        """Whether a write of this node to stable storage is still in flight (always False
        without a storage latency)."""
        return bool(self._sim._writes.get(self.node_id)) if self._sim.disk is not None else False


@mypyc_attr(allow_interpreted_subclasses=True, serializable=True)
class Node:
    """Base class. Subclasses override the `on_*` hooks and the state accessors."""

    kind: ClassVar[str] = "server"  # (each kind's class says its own)

    def __init__(self, node_id: str, peers: list[str], config: Any, rng, persistent: Any = None):
        self.id = node_id
        self.peers = peers  # the other servers, sorted
        self.config = config
        self.rng = rng
        self.records: list[dict] = []  # history records to hand to the kernel (clients fill it)

    # --- inputs -------------------------------------------------------------------------------
    def on_start(self, ctx: Context) -> None:
        """Called once after boot or restart."""

    def on_message(self, ctx: Context, src: str, msg: dict) -> None:
        """Handle one delivered message."""

    def on_timer(self, ctx: Context, name: str) -> None:
        """Handle the firing of a timer set with `ctx.set_timer`."""

    def on_command(self, ctx: Context, command: dict) -> None:
        """Handle a user command addressed to this node (e.g. force an election timeout)."""

    def on_written(self, ctx: Context) -> None:
        """A write of this node to stable storage completed (engine/storage.py); called only
        for a node class that overrides it, when it is running, and once more whenever it resumes
        from a pause (whether or not a write completed meanwhile), so it must be idempotent.
        `ctx.write_pending()` says whether later writes are still in flight."""

    # --- outputs ------------------------------------------------------------------------------
    def persistent_state(self) -> Any:
        """What survives a crash (stable storage)."""
        return None

    def take_state(self) -> dict | None:
        """The trace's `state` fields if they changed since the last call, else None."""
        return None

    def down_state(self) -> dict:
        """The `state` fields to record when this node crashes."""
        return {"role": "down"}

    def view(self, now_us: int) -> dict:
        """Everything the browser shows of this node (not part of the trace)."""
        return {}

    def digest_state(self) -> Any:
        """A JSON-able picture of the node's whole state, for the world digest."""
        return self.view(0)

    # --- snapshots (pickle) -------------------------------------------------------------------
    def __getstate__(self) -> dict:
        """Everything the node holds. (Compiled, engine/native.py, this class's and its compiled
        subclasses' fields are native, listed in `__mypyc_attrs__`, and a Python subclass's own
        attributes sit apart in its `__dict__` or its `__slots__`: a snapshot takes them all.)"""
        state = dict(getattr(self, "__dict__", {}))
        names = list(getattr(type(self), "__mypyc_attrs__", ()))
        for cls in type(self).__mro__:
            slots = cls.__dict__.get("__slots__", ())
            names.extend([slots] if isinstance(slots, str) else slots)
        for k in names:
            if k not in ("__dict__", "__weakref__") and hasattr(self, k):
                state[k] = getattr(self, k)
        return state

    def __setstate__(self, state: dict) -> None:
        for k, v in state.items():
            setattr(self, k, v)
