"""The Paxos configuration: one strict pydantic model (unknown fields are refused), units last.

`mode` picks the protocol: "basic" is single-decree Paxos ("Paxos Made Simple", §2), "multi" a
replicated key-value log with a distinguished leader (§3). Quorum sizes are flexible (Howard et
al., 2016); left out, each is a majority of the acceptors. Mutations are off by default.
"""

from __future__ import annotations

from typing import Literal, Union

from pydantic import Field, StrictInt, StrictStr, field_validator, model_validator

from ...quorum import Quorums, flexible
from ...validation import Strict

PROPOSER, ACCEPTOR, LEARNER = "proposer", "acceptor", "learner"
ALL_ROLES = (PROPOSER, ACCEPTOR, LEARNER)

MUTATIONS = {
    "accept_lower_ballot": "Acceptors ignore their promise: they accept a proposal whose ballot is "
    "lower than the one they promised (§2.2, P1a, is skipped).",
    "ignore_promised_values": "A proposer proposes its own value even when a promise reported a "
    "value already accepted (§2.2, P2c, is skipped): a new Multi-Paxos leader fills every "
    "reported slot with a no-op.",
    "learn_without_majority": "Learners learn a value as soon as one acceptor reports accepting it, "
    "without waiting for a quorum (§2.3 is skipped).",
    "quorum_minus_one": "Phase 2 counts one acceptor fewer than a quorum: a value is taken as chosen "
    "(learned, applied, answered) when q2 - 1 acceptors accepted it.",
}

Role = Literal["proposer", "acceptor", "learner"]
Mutation = Literal["accept_lower_ballot", "ignore_promised_values", "learn_without_majority",
                   "quorum_minus_one"]
Value = Union[StrictInt, StrictStr]
MAX_VALUE = 2**53  # proposed values are integers a browser holds exactly, or short strings


class PaxosConfig(Strict):
    """Everything a Paxos cluster is built with. Unknown fields are refused; scalar fields are
    declared `strict` (no "2" for 2, no "yes" for true), while lists in JSON still fill tuple
    fields. Per-node checks (roles naming real nodes, quorum sizes within the number of
    acceptors) need the node list: `check_nodes(servers)`, which the registry's topology calls."""

    mode: Literal["basic", "multi"] = "basic"
    # Basic Paxos only: which roles each node plays; a node left out plays all three.
    roles: dict[str, tuple[Role, ...]] = {}
    # Basic Paxos only: the value each proposer proposes when it starts (and again after a
    # restart, until it learns a chosen value). Proposers without one wait for a `propose`.
    proposals: dict[str, Value] = {}
    # Quorum sizes (None: a majority of the acceptors): phase 1 (promises) and phase 2 (accepts).
    q1: int | None = Field(None, ge=1, le=51, strict=True)
    q2: int | None = Field(None, ge=1, le=51, strict=True)
    # Basic Paxos: randomised exponential back-off before a proposer retries; the first window
    # (it doubles per retry); a round not finished within retry_timeout_ms is retried.
    backoff: bool = Field(True, strict=True)
    backoff_ms: float = Field(30, gt=0, le=60_000, strict=True)
    retry_timeout_ms: float = Field(150, gt=0, le=60_000, strict=True)
    # Multi-Paxos: leader failure detection and heartbeats.
    election_timeout_ms_min: float = Field(150, gt=0, le=60_000, strict=True)
    election_timeout_ms_max: float = Field(300, gt=0, le=60_000, strict=True)
    heartbeat_ms: float = Field(50, gt=0, le=60_000, strict=True)
    max_slots_per_message: int = Field(64, ge=1, le=10_000, strict=True)  # catch-up, re-sending
    client_timeout_ms: float = Field(1000, gt=0, le=600_000, strict=True)  # the kv clients read it
    mutations: tuple[Mutation, ...] = ()

    @field_validator("mutations")
    @classmethod
    def _sorted_once(cls, v: tuple[str, ...]) -> tuple[str, ...]:
        return tuple(sorted(set(v)))

    @field_validator("roles")
    @classmethod
    def _roles(cls, v: dict[str, tuple[str, ...]]) -> dict[str, tuple[str, ...]]:
        for node, roles in v.items():
            if not roles:
                raise ValueError(f"node {node!r} must play at least one role")
        return {node: tuple(r for r in ALL_ROLES if r in roles) for node, roles in sorted(v.items())}

    @field_validator("proposals")
    @classmethod
    def _values(cls, v: dict[str, Value]) -> dict[str, Value]:
        for node, value in v.items():
            check_value(value, f"proposals.{node}")
        return dict(sorted(v.items()))

    @model_validator(mode="after")
    def _consistent(self) -> "PaxosConfig":
        if self.election_timeout_ms_min > self.election_timeout_ms_max:
            raise ValueError("election_timeout_ms_min must not exceed election_timeout_ms_max")
        if self.mode == "multi" and self.roles:
            raise ValueError("roles: every Multi-Paxos server plays all three roles")
        if self.mode == "multi" and self.proposals:
            raise ValueError("proposals: Multi-Paxos values come from clients")
        return self

    # --- derived, given the servers ------------------------------------------------------------
    def roles_of(self, node: str) -> tuple[str, ...]:
        return self.roles.get(node, ALL_ROLES)

    def members(self, servers: list[str], role: str) -> list[str]:
        """The servers playing `role`, sorted."""
        return sorted(s for s in servers if role in self.roles_of(s))

    def quorums(self, servers: list[str]) -> Quorums:
        """The quorum sizes in force over the acceptors. Raises ValueError naming q1 or q2."""
        return flexible(len(self.members(servers, ACCEPTOR)), self.q1, self.q2)

    def check_nodes(self, servers: list[str]) -> None:
        """Raise ValueError naming the field when the config does not fit these servers."""
        known = set(servers)
        for field, nodes in (("roles", self.roles), ("proposals", self.proposals)):
            for node in nodes:
                if node not in known:
                    raise ValueError(f"{field}.{node}: unknown node (nodes are {', '.join(servers)})")
        for node in self.proposals:
            if PROPOSER not in self.roles_of(node):
                raise ValueError(f"proposals.{node}: {node} is not a proposer")
        for role in ALL_ROLES:
            if not self.members(servers, role):
                raise ValueError(f"roles: no node plays {role}")
        self.quorums(servers)

    def header(self, servers: list[str]) -> dict:
        """What a trace header's `config` says of the protocol: the mode, the quorum sizes in
        force, and `roles` when the nodes play different roles."""
        q = self.quorums(servers)
        out: dict = {"mode": self.mode, "q1": q.q1, "q2": q.q2}
        if self.roles:
            out["roles"] = {s: list(self.roles_of(s)) for s in servers}
        return out


def check_value(value, where: str) -> None:
    """A proposed value is an integer a browser holds exactly or a short string."""
    if isinstance(value, bool) or not isinstance(value, (int, str)):
        raise ValueError(f"{where}: a value is an integer or a string")
    if isinstance(value, int) and not -MAX_VALUE <= value <= MAX_VALUE:
        raise ValueError(f"{where}: {value} is out of range (at most {MAX_VALUE} in size)")
    if isinstance(value, str) and not 1 <= len(value) <= 32:
        raise ValueError(f"{where}: a string value has 1 to 32 characters")


def quorum_unsafe(config: PaxosConfig, servers: list[str]) -> bool:
    """True when q1 + q2 <= n acceptors (Flexible Paxos): two disjoint quorums can choose two
    values. For the page to say so."""
    return config.quorums(servers).unsafe
