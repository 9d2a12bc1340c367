"""Actions: the timed vocabulary shared by scenario files, clicks, share links and the nemesis.

An action is a strict model with a time `at` (ms) and a tag `do`. Two families share this base:
the generic faults (`engine/faults.py`: crash, restart, pause, resume, partition, cut, heal,
set_link), which any protocol gets and which act on the kernel and the network; and the actions a
protocol declares in its spec (Raft's `transfer` and `timeout`, the key-value `request`), which the
kernel hands as a command dict to the `on_command` of the node they name.

Every action says which of its fields name nodes (`check_nodes`), so that a scenario or a click
naming a node that does not exist is refused with the field in the message.
"""

from __future__ import annotations

from abc import abstractmethod
from typing import Any, Callable, ClassVar

from pydantic import Field

from .validation import Strict

Need = Callable[[str, str], None]  # need(field, node id): raise unless the node exists


class Action(Strict):
    at: float = Field(0, ge=0, le=86_400_000)

    node_fields: ClassVar[tuple[str, ...]] = ("node",)  # fields naming a node (by their alias)

    def check_nodes(self, where: str, need: Need) -> None:
        """Raise (through `need`, or ScenarioError naming `where`.field) when a field names a node
        that does not exist or the nodes do not fit together."""
        fields = self.__dict__  # the validated fields (getattr on a pydantic model is slow)
        for f in self.node_fields:
            v = fields.get(f)
            if isinstance(v, str):
                need(f, v)

    def check_protocol(self, spec, where: str) -> None:
        """Raise ScenarioError naming `where`.field when a field names something the protocol
        (its `ProtocolSpec`) does not have (a nemesis target it does not declare)."""

    def check_now(self, world, where: str) -> None:
        """Raise ScenarioError naming `where`.field when the action cannot apply to the world as
        it is now (a live click: the message it names is not waiting, the timer is not set).
        Scenario actions are not checked so: they apply to a future world, and do nothing there
        if it does not fit."""

    @abstractmethod
    def apply(self, world) -> None:
        """Do it, in the kernel `world` (an `engine.sim.Simulation`). Every action defines it."""


class ProtocolAction(Action):
    """An action a protocol declares. The kernel routes it to `target()` (the node it names, by
    default its `node` field) and calls that node's `on_command(ctx, command())`, where the command
    is the action's fields without `at` (`{"do": "transfer", "node": "n1", "to": "n2"}`)."""

    def target(self) -> str:
        return self.__dict__["node"]

    def command(self) -> dict[str, Any]:
        d = dict(self.__dict__)
        del d["at"]
        return d

    def apply(self, world) -> None:
        world.command(self.target(), self.command())


def action_to_dict(a: Action) -> dict:
    return a.model_dump(mode="json", by_alias=True, exclude_none=True)
