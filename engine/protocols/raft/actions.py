"""Raft's own actions (the generic faults and the key-value `request` are not Raft's).

    timeout (`node`)          force an election timeout now (§5.2)
    transfer (`node`, `to`)   ask a leader to hand leadership to `to` (thesis §3.10)
    heartbeat                 the leader, whichever it is, broadcasts AppendEntries now (§9.3)
    lag (`followers`)         the leader appends an entry its last k followers never get (§9.3)

Each goes, as a command, to the `on_command` of the node it names (`heartbeat`, `lag`: of the
server that leads when it applies).
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from ...actions import Need, ProtocolAction
from ...validation import ScenarioError


class Timeout(ProtocolAction):
    do: Literal["timeout"]
    node: str


class Transfer(ProtocolAction):
    do: Literal["transfer"]
    node: str
    to: str

    node_fields = ("node", "to")

    def check_nodes(self, where: str, need: Need) -> None:
        super().check_nodes(where, need)
        if self.node == self.to:
            raise ScenarioError(f"{where}.to: cannot transfer leadership to the same node")



def _leader(world) -> str | None:
    return next((n for n in world.servers if world.status[n] == "up"
                 and world.nodes[n].view(world.now_us).get("role") == "leader"), None)


class LeaderAction(ProtocolAction):
    """An action aimed at whichever server leads when it applies (none: nothing happens)."""

    def apply(self, world) -> None:
        leader = _leader(world)
        if leader is not None:
            world.command(leader, self.command())


class Heartbeat(LeaderAction):
    """§9.3: "our test script triggered a synchronized broadcast of heartbeat RPCs from the leader
    before terminating its process". The leader sends AppendEntries to every follower now and
    re-arms its heartbeat period."""

    do: Literal["heartbeat"]


class Lag(LeaderAction):
    """§9.3: "the servers in each trial had different log lengths, so some candidates were not
    eligible to become leader". The leader appends a fresh (no-op) entry and from now on ships
    entries to all but its last `followers` followers (in id order), which get bare heartbeats for
    the rest of its term (slow followers): their logs stay one entry short, so they cannot win the
    next election (§5.4.1), though they still vote. With `followers: 0` every follower gets the
    entry (a broadcast that each follower writes before it answers: §5.6's broadcast time)."""

    do: Literal["lag"]
    followers: int = Field(1, ge=0, le=50)
