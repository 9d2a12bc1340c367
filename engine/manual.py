"""Message-level control ("manual delivery"), for every protocol: actions on single messages and
timers, as frankenpaxos and DSLabs offer.

    manual (`on`)              from now on, a message that reaches its destination waits there
                               (it stays on the wire, `sim.waiting`) instead of being handled;
                               switched off, every waiting message is handled now, in arrival order
    deliver (`id`)             handle waiting message `id` now (partitions and crashes still apply)
    drop (`id`)                lose it (a `drop` record with `"why": "user"`)
    duplicate (`id`)           a copy (new id, a `send` record) that waits too
    fire (`node`, `timer`)     fire a timer the node has set, now

Message ids are the trace's, deterministic; these are ordinary timed actions, so a share link or
a trace replays them exactly. A live click naming a message that is not waiting, or a timer that
is not set, is refused with the field named (`check_now`); in a scenario they do nothing.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from .actions import Action
from .validation import ScenarioError


def _span(ids) -> str:
    ids = list(ids)
    return ", ".join(map(str, ids[:20])) + (", ..." if len(ids) > 20 else "") if ids else "none"


class Manual(Action):
    do: Literal["manual"]
    on: bool

    def apply(self, world) -> None:
        world.set_manual(self.on)


class MessageAction(Action):
    """Deliver, drop or duplicate the waiting message `id`."""

    do: Literal["deliver", "drop", "duplicate"]
    id: int = Field(ge=1)

    def check_now(self, world, where: str) -> None:
        if self.id not in world.waiting:
            raise ScenarioError(f"{where}.id: message {self.id} is not waiting "
                                f"(waiting: {_span(world.waiting)})")

    def apply(self, world) -> None:
        getattr(world, f"{self.do}_now")(self.id)


class Fire(Action):
    do: Literal["fire"]
    node: str
    timer: str = Field(min_length=1, max_length=64)

    def check_now(self, world, where: str) -> None:
        if world.status[self.node] != "up":
            raise ScenarioError(f"{where}.node: {self.node} is {world.status[self.node]}")
        timers = world.timers_of(self.node)
        if self.timer not in timers:
            raise ScenarioError(f"{where}.timer: {self.node} has no timer {self.timer!r} set "
                                f"(set: {_span(sorted(timers))})")

    def apply(self, world) -> None:
        world.fire_now(self.node, self.timer)


MANUAL_ACTIONS = (Manual, MessageAction, Fire)
