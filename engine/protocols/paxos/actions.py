"""Paxos's actions (the generic faults are not Paxos's):

    propose (`node`, `value`)              basic Paxos: the proposer proposes `value`, a new round now
    timeout (`node`)                       start the next round (basic) or phase 1 (Multi-Paxos) now
    request (`node`, `op`, `key`, `value`) Multi-Paxos: the user's key-value operation, the
                                           workload's `request` (engine/workloads/kv.py)

Which mode an action belongs to depends on the config, which a click does not carry: a scenario's
actions are checked by the topology (`check_mode`, with the index named), a live click by
`check_now`.
"""

from __future__ import annotations

from typing import Literal, Union

from pydantic import StrictInt, StrictStr, field_validator

from ...actions import ProtocolAction
from ...validation import ScenarioError
from ...workloads import kv
from .config import PROPOSER, PaxosConfig, check_value


class _ModeAction(ProtocolAction):
    def check_now(self, world, where: str) -> None:
        check_mode(self, world.config, where)


class Propose(_ModeAction):
    """Basic Paxos: the named proposer proposes `value` (a new round at once)."""

    do: Literal["propose"]
    node: str
    value: Union[StrictInt, StrictStr]

    @field_validator("value")
    @classmethod
    def _value(cls, v):
        check_value(v, "value")
        return v


class Timeout(_ModeAction):
    """Abandon the current round and start the next one now (basic Paxos, a proposer with a
    value), or start phase 1 now (Multi-Paxos, unless leading)."""

    do: Literal["timeout"]
    node: str


class Request(kv.Request):
    """The key-value workload's `request`, for Multi-Paxos only."""

    def check_now(self, world, where: str) -> None:
        check_mode(self, world.config, where)


def check_mode(action, config: PaxosConfig, where: str) -> None:
    """Raise ScenarioError naming the field when a Paxos action does not fit the config's mode or
    roles."""
    do = action.do
    if do == "propose" and config.mode != "basic":
        raise ScenarioError(f"{where}.do: propose is for basic Paxos (Multi-Paxos values come "
                            "from clients: use request)")
    if do == "request" and config.mode != "multi":
        raise ScenarioError(f"{where}.do: request is for Multi-Paxos (config.mode \"multi\"); "
                            "basic Paxos takes propose")
    if do in ("propose", "timeout") and PROPOSER not in config.roles_of(action.node):
        raise ScenarioError(f"{where}.node: {action.node} is not a proposer")


PAXOS_ACTIONS = (Propose, Timeout, Request)
