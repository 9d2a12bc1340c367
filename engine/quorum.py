"""Quorum arithmetic, shared by the consensus protocols (etcd-raft's `quorum/` package, in Python).

Nothing here knows a protocol: it counts voters. A majority quorum of n voters has
`majority(n) = n // 2 + 1` members, so any two majorities intersect. Flexible Paxos (Howard,
Malkhi and Spiegelman, 2016, "Flexible Paxos: Quorum intersection revisited", §3) shows that
only phase-1 quorums need to intersect phase-2 quorums: with quorums of sizes q1 and q2 out of n
that holds for every choice exactly when q1 + q2 > n; phase-2 quorums need not intersect each
other.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum
from typing import Iterable


class VoteResult(Enum):
    """The outcome of a vote so far (etcd's `quorum.VoteResult`)."""

    PENDING = "pending"  # neither won nor lost yet: some voters have not answered
    WON = "won"  # at least a quorum said yes
    LOST = "lost"  # so many said no that a quorum of yes can no longer be reached


def majority(n: int) -> int:
    """The size of a majority of n voters (1 for n = 0, so an empty vote never wins)."""
    return n // 2 + 1


@dataclass(frozen=True, slots=True)
class Quorums:
    """Phase-1 and phase-2 quorum sizes over `n` voters.

    Invariant: 1 <= q1 <= n and 1 <= q2 <= n (checked by `flexible`)."""

    n: int
    q1: int
    q2: int

    @property
    def intersect(self) -> bool:
        """Every phase-1 quorum meets every phase-2 quorum (Flexible Paxos, §3): q1 + q2 > n."""
        return self.q1 + self.q2 > self.n

    @property
    def unsafe(self) -> bool:
        """q1 + q2 <= n: two disjoint quorums exist, so two values can be chosen."""
        return not self.intersect

    def as_dict(self) -> dict:
        return {"n": self.n, "q1": self.q1, "q2": self.q2, "unsafe": self.unsafe}


def flexible(n: int, q1: int | None = None, q2: int | None = None) -> Quorums:
    """Quorums over n voters; a size left out is a majority. Raises ValueError naming the size
    that is out of range."""
    if n < 1:
        raise ValueError(f"a quorum needs at least one voter (got {n})")
    q1 = majority(n) if q1 is None else q1
    q2 = majority(n) if q2 is None else q2
    for name, q in (("q1", q1), ("q2", q2)):
        if not 1 <= q <= n:
            raise ValueError(f"{name}: {q} is not between 1 and the number of voters ({n})")
    return Quorums(n, q1, q2)


def vote_result(voters: Iterable[str], yes: Iterable[str], no: Iterable[str], size: int) -> VoteResult:
    """Count a vote among `voters` needing `size` yes votes. Votes from outside `voters` do not
    count; a voter in both `yes` and `no` counts as yes."""
    voters = set(voters)
    granted = voters.intersection(yes)
    if len(granted) >= size:
        return VoteResult.WON
    refused = voters.intersection(no) - granted
    if len(voters) - len(refused) < size:
        return VoteResult.LOST
    return VoteResult.PENDING


def committed_index(matched: Iterable[int], size: int) -> int:
    """The highest index that at least `size` voters have reached, given each voter's highest
    matched index (etcd's `CommittedIndex`): the size-th largest. 0 when fewer voters than `size`."""
    ordered = sorted(matched, reverse=True)
    return ordered[size - 1] if 1 <= size <= len(ordered) else 0
