"""Raft's own actions (the generic faults and the key-value `request` are not Raft's).

    timeout (`node`)          force an election timeout now (§5.2)
    transfer (`node`, `to`)   ask a leader to hand leadership to `to` (thesis §3.10)

Each goes, as a command, to the `on_command` of the node it names.
"""

from __future__ import annotations

from typing import Literal

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
