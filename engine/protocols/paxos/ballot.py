"""Ballots: (round, proposer id), totally ordered ("Paxos Made Simple", §2.5: "different proposers
choose their numbers from disjoint sets of numbers, so two different proposers never issue a
proposal with the same number").

A ballot is a tuple `(round, node)` compared as a tuple: first by round, then by the proposer's id
(plain string order, which is total). In messages and records it travels as `[round, "nX"]`;
`as_ballot` turns either form back into the tuple. `None` is below every ballot ("no promise yet").
"""

from __future__ import annotations

Ballot = tuple[int, str]


def as_ballot(b) -> Ballot | None:
    """A ballot from a message or record (`[round, node]`, a tuple, or None)."""
    return None if b is None else (b[0], b[1])


def above(b: Ballot, than: Ballot | None) -> bool:
    """b > than, where None is below every ballot."""
    return than is None or b > than


def at_least(b: Ballot, than: Ballot | None) -> bool:
    """b >= than, where None is below every ballot."""
    return than is None or b >= than


def label(b) -> str:
    """`3.n2` for ballot (3, "n2"); `-` for none."""
    return "-" if b is None else f"{b[0]}.{b[1]}"


def as_json(b: Ballot | None) -> list | None:
    return None if b is None else [b[0], b[1]]
