"""Raft: the node (node.py) and its registration."""

from ...checkers.linearizability import LinearizabilityChecker
from ...checkers.raft import RAFT_INVARIANTS, make_raft_checkers
from .. import Protocol
from .node import RaftNode


def _make_checkers(seed: int, servers: list[str]) -> list:
    return make_raft_checkers(seed, servers) + [LinearizabilityChecker(seed, servers)]


PROTOCOL = Protocol(
    name="raft",
    make_server=RaftNode,
    make_checkers=_make_checkers,
    invariants=RAFT_INVARIANTS + ((LinearizabilityChecker.name, LinearizabilityChecker.explains),),
)
