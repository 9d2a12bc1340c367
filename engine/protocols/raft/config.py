"""Raft's scenario `config`: timings, switches for the thesis's extensions, and the mutations.

Link defaults (latency, loss, duplication) are not Raft's: they are the scenario's `network`.
Scenarios written before the envelope carried them here; `upgrade` moves them on load.
"""

from __future__ import annotations

from pydantic import Field, field_validator, model_validator

from ...validation import ScenarioError, Strict, known_mutations

MUTATIONS = {
    "commit_previous_term": "The leader counts replicas of entries from earlier terms when it "
    "advances the commit index (the bug of the paper's Figure 8).",
    "vote_without_log_check": "Voters grant votes without checking that the candidate's log is at "
    "least as up-to-date as theirs (§5.4.1's election restriction is skipped).",
    "forget_vote_on_restart": "votedFor is not kept on stable storage, so a restarted node may vote "
    "twice in the same term.",
}


class RaftConfig(Strict):
    """Timings and protocol switches for a Raft cluster (units last)."""

    election_timeout_ms_min: float = Field(150, gt=0, le=60_000)
    election_timeout_ms_max: float = Field(300, gt=0, le=60_000)
    heartbeat_ms: float = Field(50, gt=0, le=60_000)
    pre_vote: bool = False
    check_quorum: bool = False
    # Thesis §9.3 (split votes, total election time): the candidate's write of its new term and
    # its own vote overlaps its RequestVote messages; it counts its own vote once that is durable.
    overlap_vote_write: bool = False
    # Thesis §10.2.1: the leader writes its log in parallel with replicating it (AppendEntries
    # leave before the leader's own write is done); its own match index is what is durable.
    leader_parallel_write: bool = False
    max_entries_per_append: int = Field(64, ge=1, le=10_000)
    client_timeout_ms: float = Field(1000, gt=0, le=600_000)
    mutations: tuple[str, ...] = ()

    @field_validator("mutations")
    @classmethod
    def _known_mutations(cls, v: tuple[str, ...]) -> tuple[str, ...]:
        return known_mutations(v, MUTATIONS)

    @model_validator(mode="after")
    def _ranges(self) -> "RaftConfig":
        if self.election_timeout_ms_min > self.election_timeout_ms_max:
            raise ValueError("election_timeout_ms_min must not exceed election_timeout_ms_max")
        return self


LINK_FIELDS = ("latency_ms_min", "latency_ms_max", "loss", "duplicate")


def upgrade(data: dict) -> dict:
    """A Raft scenario of the first shape (link defaults in `config`) in the envelope's shape
    (link defaults in `network`). Raises ScenarioError when both places give one."""
    cfg = data.get("config")
    if not isinstance(cfg, dict) or not any(k in cfg for k in LINK_FIELDS):
        return data
    net = data.get("network", {})
    if not isinstance(net, dict):
        return data  # the envelope's own validation names it
    cfg, net = dict(cfg), dict(net)
    for k in LINK_FIELDS:
        if k in cfg:
            if k in net:
                raise ScenarioError(f"config.{k}: given in network too (it belongs in network)")
            net[k] = cfg.pop(k)
    return {**data, "config": cfg, "network": net}
