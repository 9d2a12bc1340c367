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

One generator node ("o1") sends `ClientRequest {client, req, op: "work", key, cost_ms}` to one of
the topology's `entry` nodes and records `request` records: `invoke` (with `node`, `key`,
`cost_ms`), then `ok` or `fail` on a `ClientReply` (with `latency_ms`), or `timeout`.
"""

from __future__ import annotations

import bisect
import math
from typing import Any, Literal

from pydantic import Field, model_validator

from ..node import Context, Node
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


def next_arrival_us(wl: OpenLoopWorkload, changes_us: list[int], now_us: int, rng) -> int | None:
    """The next arrival after `now_us` of the piecewise-constant Poisson process, or None."""
    t = now_us
    while True:
        i = bisect.bisect_right(changes_us, t)
        boundary = changes_us[i] if i < len(changes_us) else None
        rate = wl.rate_at(t / 1000)
        if rate > 0:
            gap = max(1, int(rng.expovariate(rate) * 1_000_000))
            if boundary is None or t + gap < boundary:
                return t + gap
        if boundary is None:
            return None
        t = boundary


def draw_cost_ms(cost: Cost, rng) -> float:
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


class OpenLoopClient(Node):
    kind = "client"

    def __init__(self, node_id, entry, config, rng, workload: OpenLoopWorkload):
        super().__init__(node_id, list(entry), config, rng)
        self.workload = workload
        self.entry = list(entry)
        self.changes_us = [int(round(t * 1000)) for t in workload.changes_ms()]
        self.cdf = zipf_cdf(workload.keys, workload.zipf_s) if workload.keys else None
        self.timeout_us = int(workload.timeout_ms * 1000)
        self.next_req = 1
        self.pending: dict[int, int] = {}  # req -> invocation time (us)

    def on_start(self, ctx: Context) -> None:
        self._schedule(ctx)

    def _schedule(self, ctx: Context) -> None:
        t = next_arrival_us(self.workload, self.changes_us, ctx.now_us, self.rng)
        if t is not None:
            ctx.set_timer("arrive", t - ctx.now_us)

    def _key(self) -> str | None:
        if self.cdf is None:
            return None
        i = bisect.bisect_left(self.cdf, self.rng.random() * self.cdf[-1])
        return f"k{min(i, len(self.cdf) - 1) + 1}"

    def on_timer(self, ctx: Context, name: str) -> None:
        if name == "arrive":
            self._arrive(ctx)
            self._schedule(ctx)
            return
        req = int(name.partition(":")[2])
        if self.pending.pop(req, None) is not None:
            self.records.append({"type": "request", "client": self.id, "req": req, "op": "timeout"})

    def _arrive(self, ctx: Context) -> None:
        req = self.next_req
        self.next_req += 1
        target = self.entry[0] if len(self.entry) == 1 else self.rng.choice(self.entry)
        key = self._key()
        cost = draw_cost_ms(self.workload.cost, self.rng)
        self.pending[req] = ctx.now_us
        ctx.send(target, {"kind": "ClientRequest", "client": self.id, "req": req, "op": "work",
                          "key": key, "value": None, "cost_ms": cost})
        ctx.set_timer(f"timeout:{req}", self.timeout_us)
        self.records.append({"type": "request", "client": self.id, "req": req, "op": "invoke",
                             "node": target, "key": key, "cost_ms": cost})

    def on_message(self, ctx: Context, src: str, msg: dict) -> None:
        if msg.get("kind") != "ClientReply":
            return
        sent = self.pending.pop(msg["req"], None)
        if sent is None:
            return  # late (timed out) or duplicated
        ctx.cancel_timer(f"timeout:{msg['req']}")
        self.records.append({"type": "request", "client": self.id, "req": msg["req"],
                             "op": "ok" if msg.get("ok") else "fail",
                             "latency_ms": (ctx.now_us - sent) / 1000})

    def view(self, now_us: int) -> dict:
        return {"kind": "client", "pending": len(self.pending), "sent": self.next_req - 1}

    def digest_state(self) -> Any:
        return {"pending": sorted(self.pending.items()), "next_req": self.next_req}


def build(workload: OpenLoopWorkload | None, topology, config) -> list[tuple[str, Any]]:
    if workload is None:
        return []
    return [(GENERATOR, lambda nid, topo, cfg, rng, _p: OpenLoopClient(nid, topo.entry, cfg, rng, workload))]


def request_words(rec: dict) -> str:
    """A `request` record, for a protocol's transcript words."""
    extra = {k: rec[k] for k in ("node", "key", "cost_ms", "latency_ms") if rec.get(k) is not None}
    return f"{rec['client']:>4} {rec['op']} #{rec['req']} {extra}"
