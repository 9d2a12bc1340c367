"""The balancer: takes each client request, picks a backend with its algorithm, forwards the
work, and answers the client when a try succeeds or it gives up.

Its view of the fleet is its own (two balancers do not share one): in-flight tries per backend
(`in_flight`), which backends it believes healthy (active probes), which it has ejected (passive
outlier detection). A try ends with the backend's `Done` or, after `try_timeout_ms`, as a
failure; a failed try is retried on another backend while `max_retries` and the retry budget
allow, else the client is told `ok: false` with `why`.

Messages: in `ClientRequest {client, req, key, cost_ms}`; out `Work {tid, client, req, cost_ms}`
to a backend, whose `Done {tid, ok}` comes back; `ClientReply {req, ok, backend, why?}` to the
client; `Probe {seq}` / `ProbeReply {seq, ok}` for health checks. Records: `request` events
`assign` (with `lb`, `backend`, `attempt`, `tid` and the algorithm's evidence) and `retry` (with
`backend`, the one that failed, and `why`).
"""

from __future__ import annotations

from collections import deque
from typing import Any

from ..._mypyc import mypyc_attr
from ...node import Context, Node
from .algorithms import make_algorithm


@mypyc_attr(allow_interpreted_subclasses=True, serializable=True)
class Balancer(Node):
    kind = "balancer"

    def __init__(self, nid: str, topology: Any, config: Any, rng: Any, persistent: Any = None):
        super().__init__(nid, topology.neighbours(nid), config, rng)
        self.backends = topology.of_kind("backend")
        self.weight = {b: config.spec_of(i).weight for i, b in enumerate(self.backends)}
        self.algo = make_algorithm(config, self.backends)
        self.in_flight = {b: 0 for b in self.backends}
        self.healthy = set(self.backends)  # believed healthy by the active probes
        self.ejected: dict[str, int] = {}  # backend -> until (us), passive outlier detection
        self.stale_health = "stale_health" in config.mutations
        self.tries: dict[int, list] = {}  # tid -> [client, req, key, cost_ms, attempt, b, sent_us, tried]
        self.next_tid = 1
        self.try_us = int(config.try_timeout_ms * 1000)
        self.try_deadlines: deque[tuple[int, int]] = deque()
        self.try_armed = False
        self.errors = {b: 0 for b in self.backends}  # consecutive failed tries
        self.probe_seq = 0
        self.awaiting: dict[str, int] = {}
        self.ok_run = {b: 0 for b in self.backends}
        self.fail_run = {b: 0 for b in self.backends}
        self.budget_reqs: deque[int] = deque()
        self.budget_retries: deque[int] = deque()
        self.backoff: dict[int, list] = {}  # retry number -> the try waiting out its back-off
        self.now_us = 0
        self.refresh_us = int(config.load_refresh_ms * 1000)
        self.stale = dict(self.in_flight)
        self.view_at = 0
        self.max_retries = config.retries.max_retries
        self.recording = True  # whether this try's records are read (the context's, per try)
        self._told: int | None = None
        self._version = 0
        self._rebuild()

    # --- the view the algorithms read -----------------------------------------------------------
    def _rebuild(self) -> None:
        """Recompute the usable backends after a health or ejection change (a new tuple: the
        algorithms rebuild what they derive from it when its identity changes)."""
        self.believed = tuple(b for b in self.backends if b in self.healthy and b not in self.ejected)
        self.usable = tuple(self.backends) if self.stale_health else self.believed
        self.usable_set = frozenset(self.usable)
        self._version += 1

    def loads(self) -> dict[str, int]:
        """In-flight tries per backend as the algorithm sees them: fresh, or with
        `load_refresh_ms` a snapshot refreshed that often (the stale information case)."""
        if not self.refresh_us:
            return self.in_flight
        if self.now_us - self.view_at >= self.refresh_us:
            self.stale = dict(self.in_flight)
            self.view_at = self.now_us
        return self.stale

    # --- inputs ---------------------------------------------------------------------------------
    def on_start(self, ctx: Context) -> None:
        if self.config.health.enabled:
            ctx.set_timer("probe", int(self.config.health.interval_ms * 1000))

    def on_message(self, ctx: Context, src: str, msg: dict) -> None:
        self.now_us = ctx.now_us
        k = msg["kind"]
        if k == "ClientRequest":
            if self.max_retries and self.config.retries.budget:
                # Requests older than the budget's ttl are forgotten here too, not only when a
                # retry asks (`_budget_allows` drops the same ones before it counts): a healthy
                # fleet that never retries must not keep every request it ever saw.
                self._forget_before_ttl(self.budget_reqs, ctx.now_us)
                self.budget_reqs.append(ctx.now_us)
            self._try(ctx, src, msg["req"], msg["key"], msg["cost_ms"], 1, ())
        elif k == "Done":
            self._handle_done(ctx, msg)
        elif k == "ProbeReply":
            if self.awaiting.get(src) == msg["seq"]:
                del self.awaiting[src]
                self._probe_result(src, msg["ok"])

    def on_timer(self, ctx: Context, name: str) -> None:
        self.now_us = ctx.now_us
        if name == "try":
            self._expire_tries(ctx)
        elif name == "probe":
            self._probe_all(ctx)
        elif name == "probe_timeout":
            for b in sorted(self.awaiting):
                self._probe_result(b, False)
            self.awaiting.clear()
        elif name.startswith("uneject:"):
            b = name.partition(":")[2]
            if self.ejected.pop(b, None) is not None:
                self._rebuild()
        elif name.startswith("retry:"):
            t = self.backoff.pop(int(name.partition(":")[2]), None)
            if t is not None:
                self._try(ctx, t[0], t[1], t[2], t[3], t[4], t[7])

    # --- requests -------------------------------------------------------------------------------
    def _try(self, ctx: Context, client: str, req: int, key: str | None, cost: Any, attempt: int,
             tried: tuple[str, ...]) -> None:
        algo = self.algo
        hkey = key
        if key is None and algo.hashes:
            hkey = f"{client}:{req}"  # (formatted only for the hashing algorithms)
        self.recording = recording = ctx.recording
        if attempt == 1:
            b, told = algo.pick(self, hkey)
        else:
            b, told = algo.pick_retry(self, hkey, tried)
        if b is None:
            ctx.send(client, {"kind": "ClientReply", "req": req, "ok": False, "why": "no_backend"})
            return
        tid = self.next_tid
        self.next_tid = tid + 1
        now = ctx.now_us
        self.tries[tid] = [client, req, key, cost, attempt, b, now, tried + (b,)]
        self.in_flight[b] += 1
        ctx.send(b, {"kind": "Work", "tid": tid, "client": client, "req": req, "cost_ms": cost})
        if recording:
            rec = {"type": "request", "client": client, "id": req, "event": "assign",
                   "lb": self.id, "backend": b, "attempt": attempt, "tid": tid}
            if told is not None:
                rec.update(told)
            self.records.append(rec)
        self.try_deadlines.append((now + self.try_us, tid))
        if not self.try_armed:
            ctx.set_timer("try", self.try_us)
            self.try_armed = True

    def _handle_done(self, ctx: Context, msg: dict) -> None:
        t = self.tries.pop(msg["tid"], None)
        if t is None:
            return  # the try had timed out
        b = t[5]
        self.in_flight[b] -= 1
        if self.algo.wants_latency:
            self.algo.observe(b, (ctx.now_us - t[6]) / 1000, ctx.now_us)
        if msg["ok"]:
            self.errors[b] = 0
            ctx.send(t[0], {"kind": "ClientReply", "req": t[1], "ok": True, "backend": b})
        else:
            self._failed(ctx, t, "reject")

    def _expire_tries(self, ctx: Context) -> None:
        self.try_armed = False
        now, dl = ctx.now_us, self.try_deadlines
        while dl:
            deadline, tid = dl[0]
            if tid not in self.tries:
                dl.popleft()
                continue
            if deadline > now:
                ctx.set_timer("try", deadline - now)
                self.try_armed = True
                return
            dl.popleft()
            t = self.tries.pop(tid)
            self.in_flight[t[5]] -= 1
            if self.algo.wants_latency:
                self.algo.observe(t[5], (now - t[6]) / 1000, now)
            self._failed(ctx, t, "timeout")

    def _failed(self, ctx: Context, t: list, why: str) -> None:
        """A try failed: count it against the backend (maybe eject it), then retry elsewhere or
        tell the client."""
        b = t[5]
        self.errors[b] += 1
        od = self.config.outlier
        if od.enabled and self.errors[b] >= od.consecutive_errors and b not in self.ejected:
            if len(self.ejected) + 1 <= max(1, int(od.max_ejected_fraction * len(self.backends))):
                self.ejected[b] = ctx.now_us + int(od.ejection_ms * 1000)
                self.errors[b] = 0
                ctx.set_timer(f"uneject:{b}", int(od.ejection_ms * 1000))
                self._rebuild()
        client, req, attempt = t[0], t[1], t[4]
        if attempt <= self.max_retries and self._budget_allows(ctx.now_us):
            self.records.append({"type": "request", "client": client, "id": req, "event": "retry",
                                 "lb": self.id, "backend": b, "attempt": attempt + 1, "why": why})
            rc = self.config.retries
            delay = rc.backoff_ms * (2 ** (attempt - 1))
            if rc.jitter and delay:
                delay = self.rng.uniform(0, delay)
            if int(delay * 1000) > 0:
                rid = self.next_tid  # (ids from the try counter: unique, and deterministic)
                self.next_tid = rid + 1
                self.backoff[rid] = [client, req, t[2], t[3], attempt + 1, None, None, t[7]]
                ctx.set_timer(f"retry:{rid}", int(delay * 1000))
            else:
                self._try(ctx, client, req, t[2], t[3], attempt + 1, t[7])
            return
        ctx.send(client, {"kind": "ClientReply", "req": req, "ok": False, "backend": b, "why": why})

    def _forget_before_ttl(self, dq: deque, now: int) -> None:
        """Drop the times (us) that are `budget_ttl_ms` old or older from the front of `dq`."""
        old = now - int(self.config.retries.budget_ttl_ms * 1000)
        while dq and dq[0] <= old:
            dq.popleft()

    def _budget_allows(self, now: int) -> bool:
        """Finagle's RetryBudget: retries in the last ttl within ratio x requests + a minimum."""
        rc = self.config.retries
        if not rc.budget:
            return True
        for dq in (self.budget_reqs, self.budget_retries):
            self._forget_before_ttl(dq, now)
        allowed = rc.budget_ratio * len(self.budget_reqs) + rc.budget_min_per_s * rc.budget_ttl_ms / 1000
        if len(self.budget_retries) + 1 > allowed:
            return False
        self.budget_retries.append(now)
        return True

    # --- health ---------------------------------------------------------------------------------
    def _probe_all(self, ctx: Context) -> None:
        hc = self.config.health
        self.probe_seq += 1
        for b in self.backends:
            self.awaiting[b] = self.probe_seq
            ctx.send(b, {"kind": "Probe", "seq": self.probe_seq})
        ctx.set_timer("probe_timeout", int(hc.timeout_ms * 1000))
        ctx.set_timer("probe", int(hc.interval_ms * 1000))

    def _probe_result(self, b: str, ok: bool) -> None:
        """HAProxy's rise/fall: `rise` passes in a row to be healthy, `fall` failures to be down."""
        hc = self.config.health
        if ok:
            self.fail_run[b] = 0
            self.ok_run[b] += 1
            if b not in self.healthy and self.ok_run[b] >= hc.rise:
                self.healthy.add(b)
                self._rebuild()
        else:
            self.ok_run[b] = 0
            self.fail_run[b] += 1
            if b in self.healthy and self.fail_run[b] >= hc.fall:
                self.healthy.discard(b)
                self._rebuild()

    def on_command(self, ctx: Context, command: dict) -> None:
        if command["do"] == "algorithm":
            self.become_algorithm(command["algorithm"])

    def become_algorithm(self, name: str) -> None:
        """Switch algorithms mid-run: a fresh instance of the new one (its round-robin position,
        ring, table or latency estimates start anew); the tries in flight finish as they were
        assigned. The next `state` record names the new algorithm, which is how the checkers
        (and the page) learn of it. A restart goes back to the configured one."""
        self.algo = make_algorithm(self.config.model_copy(update={"algorithm": name}), self.backends)
        self._version += 1

    # --- outputs --------------------------------------------------------------------------------
    def take_state(self):
        if self._version == self._told:
            return None
        self._told = self._version
        return {"role": "balancer", "algorithm": self.algo.name, "healthy": list(self.believed),
                "ejected": sorted(self.ejected)}

    def down_state(self):
        self._told = None
        return {"role": "down", "algorithm": self.algo.name, "healthy": [], "ejected": []}

    def view(self, now_us):
        return {"role": "balancer", "algorithm": self.algo.name, "healthy": list(self.believed),
                "ejected": sorted(self.ejected), "in_flight": dict(self.in_flight),
                "tries": len(self.tries), "retrying": len(self.backoff)}
