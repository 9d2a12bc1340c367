"""The persistence (fsync) model: how long a node's writes to stable storage take.

A consensus protocol must make a change durable before it answers: the promise or vote a reply
carries, the entry an ack acknowledges. A node says "my persistent state changed" with
`ctx.persist()`; with a storage latency configured the kernel then

- queues a write of `persistent_state()` as it is at that instant; a node's writes complete one
  after the other, in order (one disk per node), each taking a draw from the latency: a write
  issued while another is pending starts when that one is done. Every `persist()` of one instant
  joins the same write (a group commit: all a handler changed is one fsync);
- holds every message the node sends while it has a write pending, and sends it (draws its link
  latency, records its `send`) only when the last write pending at the time it was sent is done
  (etcd's rule for a `Ready`: persist the hard state and entries, then send the messages).
  Messages sent when nothing is pending go at once, as without the model;
- on a crash, forgets the unfinished writes and the messages held behind them: the restarted node
  gets the state of its last completed write, and nobody ever saw a message that depended on what
  was lost (a reply whose write did not finish was never sent). A paused node's
  write completes (the disk does not stop), but what it releases waits for the node to resume.

The default (no `storage`, or a zero latency) is no model at all: `persist()` does nothing and
every run, trace and digest is what it was before the model existed. A protocol that never calls
`persist()` is unaffected either way. Draws come from one RNG stream per node, `storage:<id>`.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from . import rng as rngmod
from .network import ms_to_us
from .validation import Strict


class StorageConfig(Strict):
    """A node's write latency: uniform in [latency_ms_min, latency_ms_max] (constant when they are
    equal), or with `dist: "exponential"` the minimum plus an exponential tail whose mean is
    max - min."""

    latency_ms_min: float = Field(0, ge=0, le=60_000)
    latency_ms_max: float = Field(0, ge=0, le=60_000)
    dist: Literal["uniform", "exponential"] = "uniform"

    @model_validator(mode="after")
    def _ranges(self) -> "StorageConfig":
        if self.latency_ms_min > self.latency_ms_max:
            raise ValueError("latency_ms_min must not exceed latency_ms_max")
        return self

    @property
    def on(self) -> bool:
        return self.latency_ms_max > 0


class Disk:
    """The per-run latency model: one RNG stream per node, drawn once per write."""

    __slots__ = ("lo_us", "span_us", "exponential", "seed", "rngs")

    def __init__(self, cfg: StorageConfig, seed: int):
        self.lo_us = ms_to_us(cfg.latency_ms_min)
        self.span_us = ms_to_us(cfg.latency_ms_max) - self.lo_us
        self.exponential = cfg.dist == "exponential"
        self.seed = seed
        self.rngs: dict[str, object] = {}

    def draw_us(self, nid: str) -> int:
        rng = self.rngs.get(nid)
        if rng is None:
            rng = self.rngs[nid] = rngmod.stream(self.seed, f"storage:{nid}")
        if not self.span_us:
            return self.lo_us
        if self.exponential:
            return self.lo_us + int(rng.expovariate(1 / self.span_us))
        return self.lo_us + int(rng.random() * self.span_us)


__all__ = ["StorageConfig", "Disk"]
