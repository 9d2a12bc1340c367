"""A backend: serves up to `concurrency` requests at once, each for cost / speed ms; the rest
wait in a queue of `queue` places; a request finding the queue full is rejected at once.

`slow` (a protocol action) multiplies its configured speed by `factor` (1 restores it); the
requests in service finish their remaining work at the new speed. Crash, pause and restart are the
generic faults: a restarted backend is a fresh one (empty, at its configured speed).

Messages: in `Work {tid, client, req, cost_ms}` and `Probe {seq}`; out `Done {tid, ok}` and
`ProbeReply {seq, ok}` (ok unless it would reject a request now) to the sender. Records: the
`request` event `start` (with `backend`, `tid`) when a request enters service; `state` with
`up`, `healthy`, `in_flight`, `queue`, `speed`.
"""

from __future__ import annotations

import heapq
from collections import deque
from typing import Any, Final

_heappush: Final = heapq.heappush
_heappop: Final = heapq.heappop

from ..._mypyc import mypyc_attr
from ...node import Context, Node


@mypyc_attr(allow_interpreted_subclasses=True, serializable=True)
class Backend(Node):
    kind = "backend"

    def __init__(self, nid: str, topology: Any, config: Any, rng: Any, persistent: Any = None):
        super().__init__(nid, topology.neighbours(nid), config, rng)
        spec = config.spec_of(topology.of_kind("backend").index(nid))
        self.concurrency = spec.concurrency
        self.queue_limit = spec.queue
        self.base_speed = self.speed = spec.speed
        self.serving: list[tuple[int, int, str, str, int]] = []  # heap: (done_us, tid, src, client, req)
        self.queue: deque[tuple[int, str, float, str, int]] = deque()  # (tid, src, cost_ms, client, req)
        self.served = 0
        self.rejected = 0
        self._told: tuple | None = None

    def on_message(self, ctx: Context, src: str, msg: dict) -> None:
        k = msg["kind"]
        if k == "Work":
            if len(self.serving) < self.concurrency:
                self._start(ctx, msg["tid"], src, msg["cost_ms"], msg["client"], msg["req"])
            elif len(self.queue) < self.queue_limit:
                self.queue.append((msg["tid"], src, msg["cost_ms"], msg["client"], msg["req"]))
            else:
                self.rejected += 1
                ctx.send(src, {"kind": "Done", "tid": msg["tid"], "ok": False})
        elif k == "Probe":
            ctx.send(src, {"kind": "ProbeReply", "seq": msg["seq"], "ok": self._accepting()})

    def _accepting(self) -> bool:
        return len(self.serving) < self.concurrency or len(self.queue) < self.queue_limit

    def _start(self, ctx: Context, tid: int, src: str, cost_ms: Any, client: str, req: int) -> None:
        now = ctx.now_us
        done = now + max(1, int(cost_ms * 1000 / self.speed))
        serving = self.serving
        if serving:
            _heappush(serving, (done, tid, src, client, req))
            if serving[0][1] == tid:
                ctx.set_timer("serve", done - now)
        else:  # (the common case: an idle backend)
            serving.append((done, tid, src, client, req))
            ctx.set_timer("serve", done - now)
        if ctx.recording:
            self.records.append({"type": "request", "client": client, "id": req, "event": "start",
                                 "backend": self.id, "tid": tid})

    def on_timer(self, ctx: Context, name: str) -> None:
        if name != "serve":
            return
        now = ctx.now_us
        serving, queue = self.serving, self.queue
        while serving and serving[0][0] <= now:
            _, tid, src, _c, _r = _heappop(serving)
            self.served += 1
            ctx.send(src, {"kind": "Done", "tid": tid, "ok": True})
            if queue:
                q = queue.popleft()
                self._start(ctx, q[0], q[1], q[2], q[3], q[4])
        if serving:
            ctx.set_timer("serve", serving[0][0] - now)

    def on_command(self, ctx: Context, command: dict) -> None:
        if command["do"] == "slow":
            self._set_speed(ctx, self.base_speed * command["factor"])

    def _set_speed(self, ctx: Context, speed: float | int) -> None:
        """The work left in service is done at the new speed from now on."""
        now, old = ctx.now_us, self.speed
        self.speed = speed
        self.serving = [(now + max(1, int((d - now) * old / speed)), tid, src, c, r)
                        for d, tid, src, c, r in self.serving]
        heapq.heapify(self.serving)
        if self.serving:
            ctx.set_timer("serve", self.serving[0][0] - now)

    def take_state(self):
        told = (len(self.serving), len(self.queue), self.speed)
        if told == self._told:
            return None
        self._told = told
        return {"role": "backend", "up": True, "healthy": self._accepting(), "in_flight": told[0],
                "queue": told[1], "speed": told[2]}

    def down_state(self):
        self._told = None
        return {"role": "down", "up": False, "healthy": False, "in_flight": 0, "queue": 0,
                "speed": self.speed}

    def view(self, now_us):
        return {"role": "backend", "in_flight": len(self.serving), "queue": len(self.queue),
                "concurrency": self.concurrency, "queue_limit": self.queue_limit,
                "speed": self.speed, "served": self.served, "rejected": self.rejected}
