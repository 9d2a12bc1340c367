"""The load balancer's own action (the generic faults crash, pause, restart... apply to any node).

    slow (`node`, `factor`)   backend `node` works at `factor` x its configured speed from now on
                              (0.5 half speed, 0.1 a tenth, 1 restores it)
    algorithm (`node`, `algorithm`)
                              balancer `node` switches to `algorithm` from now on (a fresh
                              instance: its sequence, ring or latency estimates start anew)
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from ...actions import Need, ProtocolAction
from ...validation import ScenarioError
from .config import ALGORITHMS


class Slow(ProtocolAction):
    do: Literal["slow"]
    node: str
    factor: float = Field(gt=0, le=100)

    def check_nodes(self, where: str, need: Need) -> None:
        super().check_nodes(where, need)
        if not (self.node[:1] == "b" and self.node[1:].isdigit()):  # backends are b1..bN
            raise ScenarioError(f"{where}.node: only a backend (b1, b2, ...) can be slowed, "
                                f"not {self.node!r}")


class SetAlgorithm(ProtocolAction):
    do: Literal["algorithm"]
    node: str
    algorithm: Literal[ALGORITHMS]

    def check_nodes(self, where: str, need: Need) -> None:
        super().check_nodes(where, need)
        if not (self.node[:2] == "lb" and self.node[2:].isdigit()):  # balancers are lb1, lb2
            raise ScenarioError(f"{where}.node: only a balancer (lb1, lb2) runs an algorithm, "
                                f"not {self.node!r}")
