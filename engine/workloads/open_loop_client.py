"""The open-loop workload's client node (open_loop.py describes the workload and its records):
one arrival process, its share of the rate; it never waits."""

from __future__ import annotations

import bisect
import math
from collections import deque
from typing import Any

from .._mypyc import mypyc_attr
from ..node import Context, Node
from .open_loop import OpenLoopWorkload, draw_cost_ms, next_arrival_us, zipf_cdf


def _exponential(rng: Any, lambd: float) -> float:
    """`rng.expovariate(lambd)`, the same float from the same draw (CPython's formula), without
    the call into random.py: it runs twice per request, and compiled, `math.log` is C's."""
    return -math.log(1.0 - rng.random()) / lambd


@mypyc_attr(allow_interpreted_subclasses=True, serializable=True)
class OpenLoopClient(Node):
    """One arrival process (`o1`, `o2`, ...), its share of the rate; it never waits."""

    kind = "client"

    def __init__(self, node_id, entry, config, rng, workload: OpenLoopWorkload, share: float = 1.0):
        super().__init__(node_id, list(entry), config, rng)
        self.workload = workload
        self.entry = list(entry)
        self.changes_us = [int(round(t * 1000)) for t in workload.changes_ms()]
        self.cdf = zipf_cdf(workload.keys, workload.zipf_s) if workload.keys else None
        self.timeout_us = int(workload.timeout_ms * 1000)
        self.timeout_ms = float(workload.timeout_ms)  # (a float whether the scenario said 1000 or 1000.0)
        self.share = share  # this client's fraction of the rate (the clients split it evenly)
        self.next_req = 1
        self.pending: dict[int, int] = {}  # req -> invocation time (us), oldest first
        # Requests in invocation order: with one timeout for all, also deadline order. One timer
        # ("timeout") is armed for the oldest pending request, so a request costs no timer of its own.
        self.deadlines: deque[int] = deque()
        self.timeout_armed = False
        self._cost = workload.cost
        self._rate = workload.rate_per_s * share  # (without a schedule or bursts: the rate, always)
        # An exponential cost's draw, inline (draw_cost_ms's, the same float): the common case.
        self._exp_lambd = 1 / workload.cost.mean_ms if workload.cost.dist == "exponential" else None

    def on_start(self, ctx: Context) -> None:
        self._schedule(ctx)

    def _schedule(self, ctx: Context) -> None:
        if self.changes_us:
            t = next_arrival_us(self.workload, self.changes_us, ctx.now_us, self.rng, self.share)
            if t is not None:
                ctx.set_timer("arrive", t - ctx.now_us)
            return
        if self._rate > 0:  # (next_arrival_us's draw, at a constant rate)
            ctx.set_timer("arrive", max(1, int(_exponential(self.rng, self._rate) * 1_000_000)))

    def _key(self) -> str | None:
        if self.cdf is None:
            return None
        i = bisect.bisect_left(self.cdf, self.rng.random() * self.cdf[-1])
        return f"k{min(i, len(self.cdf) - 1) + 1}"

    def on_timer(self, ctx: Context, name: str) -> None:
        if name == "arrive":
            self._arrive(ctx)
            self._schedule(ctx)
        elif name == "timeout":
            self._expire(ctx)

    def _expire(self, ctx: Context) -> None:
        """Time out every pending request whose deadline has come, then re-arm for the next."""
        self.timeout_armed = False
        now, pending, dl, records = ctx.now_us, self.pending, self.deadlines, self.records
        while dl:
            req = dl[0]
            sent = pending.get(req)
            if sent is None:
                dl.popleft()  # already answered
                continue
            if sent + self.timeout_us > now:
                ctx.set_timer("timeout", sent + self.timeout_us - now)
                self.timeout_armed = True
                return
            dl.popleft()
            del pending[req]
            records.append({"type": "request", "client": self.id, "id": req, "event": "timeout"})

    def _arrive(self, ctx: Context) -> None:
        req = self.next_req
        self.next_req = req + 1
        target = self.entry[0] if len(self.entry) == 1 else self.rng.choice(self.entry)
        key = self._key() if self.cdf is not None else None
        lambd = self._exp_lambd
        cost: float | int  # (a constant cost is the config's number as it is: 10 or 10.0)
        if lambd is not None:
            cost = round(_exponential(self.rng, lambd), 3)
        else:
            cost = draw_cost_ms(self._cost, self.rng)
        self.pending[req] = ctx.now_us
        self.deadlines.append(req)
        if not self.timeout_armed:
            ctx.set_timer("timeout", self.timeout_us)
            self.timeout_armed = True
        ctx.send(target, {"kind": "ClientRequest", "client": self.id, "req": req, "key": key,
                          "cost_ms": cost})
        if ctx.recording:
            self.records.append({"type": "request", "client": self.id, "id": req,
                                 "event": "arrive", "to": target, "key": key, "cost_ms": cost,
                                 "timeout_ms": self.timeout_ms})

    def on_message(self, ctx: Context, src: str, msg: dict) -> None:
        if msg.get("kind") != "ClientReply":
            return
        sent = self.pending.pop(msg["req"], None)
        if sent is None:
            return  # late (timed out) or duplicated
        if not ctx.recording:
            return  # (the request's end is its record, and nobody reads it now)
        if msg.get("ok"):
            event = "done"
        else:
            event = "timeout" if msg.get("why") == "timeout" else "reject"
        rec = {"type": "request", "client": self.id, "id": msg["req"], "event": event,
               "latency_ms": (ctx.now_us - sent) / 1000}
        b = msg.get("backend")
        if b is not None:
            rec["backend"] = b
        self.records.append(rec)

    def view(self, now_us: int) -> dict:
        return {"kind": "client", "pending": len(self.pending), "sent": self.next_req - 1}

    def digest_state(self) -> Any:
        return {"pending": sorted(self.pending.items()), "next_req": self.next_req}
