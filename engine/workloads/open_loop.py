"""An open-loop arrival process (`"workload": {"kind": "open_loop", ...}`), for load balancing.

Unlike the closed-loop key-value clients, arrivals do not wait for completions: requests arrive as
a Poisson process whatever the service is doing, which is what makes queues build up (Schroeder,
Wierman and Harchol-Balter, "Open Versus Closed: A Cautionary Tale", NSDI 2006).

- The rate is piecewise constant: `rate_per_s` from the start, changed by `schedule` steps
  (`{"at_ms", "rate_per_s"}`), and multiplied by `factor` during each burst
  (`{"at_ms", "duration_ms", "factor"}`). Arrivals are drawn exactly for such a rate: an
  exponential gap at the current rate, restarted at the next change if it would cross one (the
  exponential has no memory, so this is the non-homogeneous Poisson process itself).
- Each request carries a cost (`cost_ms`, the service time a backend should spend), drawn from
  `cost`: constant, exponential, uniform (mean +- spread x mean), lognormal (sigma = spread) or
  Pareto (alpha = spread, heavy-tailed), each with mean `mean_ms`.
- With `keys`, each request names a key drawn from a Zipf law with exponent `zipf_s` (k1 the
  hottest), for affinity and hot-spot experiments.

`clients` generator nodes (`o1`, `o2`, ...; one by default) share the rate evenly. Each sends
`ClientRequest {client, req, key, cost_ms}` to one of the topology's `entry` nodes (at random when
there are several) and records `request` records (docs/trace-format.md):
`{"client", "id", "event": "arrive", "to", "key", "cost_ms", "timeout_ms"}`, then exactly one of
`done` (a `ClientReply` with `ok`), `reject` (one without), `timeout` (its own timer, or a reply
with `why: "timeout"`), with `latency_ms` on a reply and the reply's `backend` if it names one.
Each request's deadline is `timeout_ms` after it arrives; one timer serves them all. (The
client node is in open_loop_client.py, apart from the pydantic models: it is compiled with the
kernel, engine/native.py.)
"""

from __future__ import annotations

import bisect
import math
from typing import Any, Literal

from pydantic import Field, model_validator

from ..validation import Strict

GENERATOR = "o1"


class RateStep(Strict):
    at_ms: float = Field(ge=0)
    rate_per_s: float = Field(ge=0, le=100_000)


class Burst(Strict):
    at_ms: float = Field(ge=0)
    duration_ms: float = Field(gt=0)
    factor: float = Field(ge=0, le=1000)


class Cost(Strict):
    dist: Literal["constant", "exponential", "uniform", "lognormal", "pareto"] = "exponential"
    mean_ms: float = Field(10, gt=0, le=600_000)
    spread: float = Field(0.5, ge=0, le=100)  # uniform: +-fraction; lognormal: sigma; pareto: alpha

    @model_validator(mode="after")
    def _shape(self) -> "Cost":
        if self.dist == "uniform" and self.spread > 1:
            raise ValueError("a uniform cost needs spread <= 1 (mean +- spread x mean)")
        if self.dist == "pareto" and self.spread <= 1:
            raise ValueError("a Pareto cost needs spread (alpha) > 1 for a finite mean")
        return self


class OpenLoopWorkload(Strict):
    kind: Literal["open_loop"]
    rate_per_s: float = Field(50, ge=0, le=100_000)
    schedule: tuple[RateStep, ...] = ()
    bursts: tuple[Burst, ...] = ()
    cost: Cost = Cost()
    keys: int | None = Field(None, ge=1, le=100_000)
    zipf_s: float = Field(1.0, ge=0, le=10)
    timeout_ms: float = Field(1000, gt=0, le=600_000)
    clients: int = Field(1, ge=1, le=20)

    @model_validator(mode="after")
    def _ordered(self) -> "OpenLoopWorkload":
        times = [s.at_ms for s in self.schedule]
        if times != sorted(times):
            raise ValueError("schedule: steps must be in time order")
        return self

    def rate_at(self, t_ms: float) -> float:
        """Arrivals per second at `t_ms`."""
        rate = self.rate_per_s
        for s in self.schedule:
            if s.at_ms <= t_ms:
                rate = s.rate_per_s
        for b in self.bursts:
            if b.at_ms <= t_ms < b.at_ms + b.duration_ms:
                rate *= b.factor
        return rate

    def changes_ms(self) -> list[float]:
        """Every instant the rate may change, sorted."""
        pts = {s.at_ms for s in self.schedule}
        for b in self.bursts:
            pts.update((b.at_ms, b.at_ms + b.duration_ms))
        return sorted(pts)


def next_arrival_us(wl: OpenLoopWorkload, changes_us: list[int], now_us: int, rng,
                    share: float = 1.0) -> int | None:
    """The next arrival after `now_us` of the piecewise-constant Poisson process (at `share` of
    the workload's rate), or None."""
    t = now_us
    while True:
        i = bisect.bisect_right(changes_us, t) if changes_us else 0
        boundary = changes_us[i] if i < len(changes_us) else None
        rate = (wl.rate_at(t / 1000) if changes_us else wl.rate_per_s) * share
        if rate > 0:
            gap = max(1, int(rng.expovariate(rate) * 1_000_000))
            if boundary is None or t + gap < boundary:
                return t + gap
        if boundary is None:
            return None
        t = boundary


def draw_cost_ms(cost: Cost, rng) -> float | int:  # (constant: the mean as given, 10 or 10.0)
    m, s = cost.mean_ms, cost.spread
    if cost.dist == "constant":
        v = m
    elif cost.dist == "exponential":
        v = rng.expovariate(1 / m)
    elif cost.dist == "uniform":
        v = rng.uniform(m * (1 - s), m * (1 + s))
    elif cost.dist == "lognormal":
        v = rng.lognormvariate(math.log(m) - s * s / 2, s)
    else:  # pareto: x_m * Pareto(alpha), with x_m chosen for the mean
        v = m * (s - 1) / s * rng.paretovariate(s)
    return round(v, 3)


def zipf_cdf(keys: int, s: float) -> list[float]:
    """Cumulative weights of k1..kN under Zipf's law, P(k) proportional to 1 / k^s."""
    out, total = [], 0.0
    for k in range(1, keys + 1):
        total += 1 / k ** s
        out.append(total)
    return out


def client_ids(workload: OpenLoopWorkload) -> list[str]:
    return [f"o{i}" for i in range(1, workload.clients + 1)]


def build(workload: OpenLoopWorkload | None, topology, config) -> list[tuple[str, Any]]:
    if workload is None:
        return []
    from .open_loop_client import OpenLoopClient  # (it imports this module's draws)

    share = 1 / workload.clients
    return [(cid, lambda nid, topo, cfg, rng, _p: OpenLoopClient(nid, topo.entry, cfg, rng,
                                                                 workload, share))
            for cid in client_ids(workload)]


REQUEST_WORD_FIELDS = ("to", "lb", "backend", "key", "cost_ms", "attempt", "why", "latency_ms")


def request_words(rec: dict) -> str:
    """A `request` record, for a protocol's transcript words."""
    extra = " ".join(f"{k}={rec[k]}" for k in REQUEST_WORD_FIELDS if rec.get(k) is not None)
    return f"{rec['client']:>4}#{rec['id']} {rec['event']} {extra}".rstrip()
