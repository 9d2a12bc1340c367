"""The load balancer's scenario `config`: the algorithm and its knobs, the backends, health
checking, retries, the observer's metrics, and the mutations.

Backends are `b1..bN` (the topology's); `backend` gives every one its defaults and `backends[i]`
overrides some fields for `b{i+1}` (a heterogeneous fleet: `[{"speed": 0.25}, {}, {"weight": 5}]`).
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator, model_validator

from ...validation import Strict, known_mutations

ALGORITHMS = ("round_robin", "weighted_round_robin", "random", "weighted_random",
              "least_connections", "weighted_least_connections", "power_of_d", "consistent_hash",
              "maglev", "peak_ewma")

MUTATIONS = {
    "stale_health": "The balancer keeps sending to backends it believes down or has ejected "
    "(health results are recorded but never consulted).",
    "sticky_rr": "Round robin does not advance past a backend it cannot use, so the next "
    "healthy backend takes that backend's share as well as its own.",
    "p2c_scan_all": "Power of d choices scans every backend's load, then flips a coin between "
    "the least loaded and a random one: O(N) per pick, and half the picks ignore load.",
}


class BackendSpec(Strict):
    """One backend: `concurrency` requests served at once, the rest wait in a queue of `queue`
    (a full queue rejects); a request of cost c takes c / `speed` ms; `weight` for the weighted
    algorithms."""

    concurrency: int = Field(1, ge=1, le=1000)
    queue: int = Field(16, ge=0, le=100_000)
    speed: float = Field(1.0, gt=0, le=1000)
    weight: int = Field(1, ge=1, le=1000)


class BackendOverride(Strict):
    concurrency: int | None = Field(None, ge=1, le=1000)
    queue: int | None = Field(None, ge=0, le=100_000)
    speed: float | None = Field(None, gt=0, le=1000)
    weight: int | None = Field(None, ge=1, le=1000)


class HealthCheck(Strict):
    """Active probes from each balancer (Envoy's health checker, HAProxy's `rise`/`fall`)."""

    enabled: bool = False
    interval_ms: float = Field(1000, gt=0, le=600_000)
    timeout_ms: float = Field(500, gt=0, le=600_000)
    rise: int = Field(2, ge=1, le=100)   # consecutive successes to be healthy again
    fall: int = Field(3, ge=1, le=100)   # consecutive failures to be marked unhealthy

    @model_validator(mode="after")
    def _timeout_in_interval(self) -> "HealthCheck":
        if self.timeout_ms > self.interval_ms:
            raise ValueError("timeout_ms must not exceed interval_ms (one probe at a time)")
        return self


class OutlierDetection(Strict):
    """Passive ejection on consecutive failed tries (Envoy's `consecutive_5xx`, 5 by default)."""

    enabled: bool = False
    consecutive_errors: int = Field(5, ge=1, le=1000)
    ejection_ms: float = Field(5000, gt=0, le=3_600_000)
    max_ejected_fraction: float = Field(0.5, ge=0, le=1)


class Retries(Strict):
    """Retries to another backend, within Finagle's RetryBudget: over the last `budget_ttl_ms`,
    retries may number `budget_ratio` x requests + `budget_min_per_s` x the window's seconds.
    Each retry waits a back-off of `backoff_ms` x 2^(retry - 1), uniformly jittered in
    [0, that] when `jitter` (AWS's "full jitter")."""

    max_retries: int = Field(0, ge=0, le=10)
    budget_ratio: float = Field(0.2, ge=0, le=100)
    budget_min_per_s: float = Field(10, ge=0, le=100_000)
    budget_ttl_ms: float = Field(10_000, gt=0, le=600_000)
    budget: bool = True
    backoff_ms: float = Field(0, ge=0, le=60_000)
    jitter: bool = True


class Metrics(Strict):
    """The metrics observer: a `metric` record every `interval_ms`; latency percentiles over the
    last `window_ms`."""

    interval_ms: float = Field(1000, gt=0, le=600_000)
    window_ms: float = Field(5000, gt=0, le=3_600_000)


def _is_prime(n: int) -> bool:
    if n < 2:
        return False
    i = 2
    while i * i <= n:
        if n % i == 0:
            return False
        i += 1
    return True


class LbConfig(Strict):
    """A balancer (or two) in front of backends b1..bN (units last)."""

    algorithm: Literal[ALGORITHMS] = "round_robin"
    choices: int = Field(2, ge=1, le=20)  # power_of_d's d; peak_ewma's sample (Finagle: 2)
    load_refresh_ms: float = Field(0, ge=0, le=600_000)  # 0: fresh loads; else a snapshot this old
    vnodes: int = Field(100, ge=1, le=10_000)  # consistent_hash: points per backend on the ring
    bounded_load: float | None = Field(None, ge=1, le=100)  # consistent_hash: Mirrokni's c (1.25)
    maglev_table_size: int = Field(65537, ge=7, le=1_000_003)
    ewma_decay_ms: float = Field(10_000, gt=0, le=3_600_000)  # Finagle's decayTime (10 s)
    try_timeout_ms: float = Field(1000, gt=0, le=600_000)  # the balancer gives up on a try
    backend: BackendSpec = BackendSpec()
    backends: tuple[BackendOverride, ...] = Field((), max_length=20)
    health: HealthCheck = HealthCheck()
    outlier: OutlierDetection = OutlierDetection()
    retries: Retries = Retries()
    metrics: Metrics = Metrics()
    mutations: tuple[str, ...] = ()

    @field_validator("mutations")
    @classmethod
    def _known_mutations(cls, v: tuple[str, ...]) -> tuple[str, ...]:
        return known_mutations(v, MUTATIONS)

    @field_validator("maglev_table_size")
    @classmethod
    def _prime(cls, v: int) -> int:
        if not _is_prime(v):
            raise ValueError(f"{v} is not prime (Maglev's table size must be: 65537, 251, ...)")
        return v

    def spec_of(self, index: int) -> BackendSpec:
        """Backend b{index+1}'s spec: the defaults with its overrides."""
        if index < len(self.backends):
            o = self.backends[index].model_dump(exclude_none=True)
            if o:
                return self.backend.model_copy(update=o)
        return self.backend
