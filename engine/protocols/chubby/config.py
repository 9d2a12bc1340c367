"""A Chubby cell's configuration: one strict model, units last.

Defaults are the paper's (Burrows, "The Chubby lock service for loosely-coupled distributed
systems", OSDI 2006): a session lease of 12 s (§2.8: "The default extension is 12s"), a grace
period of 45 s (§2.8: "45s by default"), a lock-delay of one minute (§2.4: "any value up to a
minute"), a master lease of a few seconds (§2.1: "an interval of a few seconds known as the master
lease"). Lessons and seed sweeps shorten them all. The replicas run Multi-Paxos with the Paxos
engine's timings (election timeout, heartbeat), taken from here.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator, model_validator

from ...validation import Strict
from ..paxos.config import PaxosConfig

MUTATIONS = {
    "no_lock_delay": "The master frees the lock of a holder whose session it expires at once, "
    "without lock-delay (§2.4): a waiter takes it while the old holder may still be acting on it.",
    "no_fencing": "The storage service accepts a write whatever its sequencer: a holder whose "
    "session was lost overwrites its successor's data.",
}

Mutation = Literal["no_lock_delay", "no_fencing"]
LOCK = "/ls/cell/lock"  # the one lock the client processes contend for (§2.3's name form)


class ChubbyConfig(Strict):
    """A cell (the scenario's `nodes` replicas, 3 or 5), `clients` application processes c1.. and
    a storage service `st`. With `auto`, each client loops: acquire the lock, write to the storage
    with its sequencer, hold it `hold_ms`, release, wait up to `think_ms_max`."""

    clients: int = Field(3, ge=0, le=20, strict=True)
    # The master (§2.1, §2.8, §2.12).
    master_lease_ms: float = Field(4000.0, gt=0, le=600_000, strict=True)
    session_lease_ms: float = Field(12_000.0, gt=0, le=600_000, strict=True)
    grace_period_ms: float = Field(45_000.0, ge=0, le=600_000, strict=True)
    lock_delay_ms: float = Field(60_000.0, ge=0, le=600_000, strict=True)
    # Multi-Paxos among the replicas (engine/protocols/paxos/multi.py).
    election_timeout_ms_min: float = Field(150.0, gt=0, le=60_000, strict=True)
    election_timeout_ms_max: float = Field(300.0, gt=0, le=60_000, strict=True)
    heartbeat_ms: float = Field(50.0, gt=0, le=60_000, strict=True)
    max_slots_per_message: int = Field(64, ge=1, le=10_000, strict=True)
    # Clients: how often one looking for the master tries the next replica.
    retry_ms: float = Field(100.0, gt=0, le=60_000, strict=True)
    auto: bool = Field(True, strict=True)
    hold_ms: float = Field(60.0, ge=0, le=600_000, strict=True)
    think_ms_max: float = Field(150.0, ge=0, le=600_000, strict=True)
    mutations: tuple[Mutation, ...] = ()

    @field_validator("mutations")
    @classmethod
    def _sorted_once(cls, v: tuple[str, ...]) -> tuple[str, ...]:
        return tuple(sorted(set(v)))

    @model_validator(mode="after")
    def _consistent(self) -> "ChubbyConfig":
        if self.election_timeout_ms_min > self.election_timeout_ms_max:
            raise ValueError("election_timeout_ms_min must not exceed election_timeout_ms_max")
        if self.heartbeat_ms >= self.master_lease_ms:
            raise ValueError("heartbeat_ms must be shorter than master_lease_ms (the lease is "
                             "renewed by heartbeats)")
        return self

    def paxos(self) -> PaxosConfig:
        """The Multi-Paxos configuration the replicas run (every replica plays every role)."""
        return PaxosConfig(mode="multi", election_timeout_ms_min=self.election_timeout_ms_min,
                           election_timeout_ms_max=self.election_timeout_ms_max,
                           heartbeat_ms=self.heartbeat_ms,
                           max_slots_per_message=self.max_slots_per_message)

    # --- derived (microseconds) -------------------------------------------------------------------
    def session_lease_us(self) -> int:
        return int(self.session_lease_ms * 1000)

    def keepalive_early_us(self) -> int:
        """§2.8: the master holds a KeepAlive "until the client's previous lease interval is close
        to expiring": it answers when a quarter of the lease is left."""
        return int(self.session_lease_ms * 250)

    def local_margin_us(self) -> int:
        """§2.8: the client's local lease is "a conservative approximation of the master's lease
        timeout"; our clocks share one time base, so the margin (a tenth of the lease) stands for
        the drift allowance."""
        return int(self.session_lease_ms * 100)

    def has(self, mutation: str) -> bool:
        return mutation in self.mutations
