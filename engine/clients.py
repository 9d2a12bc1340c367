"""Clients: the workload generator and the user's own client.

Each workload client is a single process in the Jepsen sense: it issues one operation at a time
(`read`, `write` or `cas` on a few keys), waits for its completion and then, after a random pause
drawn from its own RNG stream, issues the next. The history records every invocation and its
completion: `ok`, `fail` (the operation certainly did not take effect: a cas whose expected value did
not match) or `info` (a timeout: it may or may not have taken effect, so it stays open-ended).

A follower answers `not_leader` with a hint; the client then re-sends the same operation to the
hinted leader (safe: the follower did not append it). The user's client ("user") sends each
request to the node the user clicked and may have several requests open at once.
"""

from __future__ import annotations

from .node import Context, Node

USER_CLIENT = "user"
RETRY_US = 20_000


class ClientNode(Node):
    kind = "client"

    def __init__(self, node_id, servers, config, rng, workload=None):
        super().__init__(node_id, list(servers), config, rng)
        self.workload = workload
        self.servers = list(servers)
        self.leader: str | None = None
        self.next_req = 1
        self.last_invoke_us = 0
        self.pending: dict[int, dict] = {}
        self.timeout_us = int(config.client_timeout_ms * 1000)
        if workload:
            self.mean_gap_us = max(1000, int(workload.clients / workload.rate_per_s * 1_000_000))

    # --- lifecycle ----------------------------------------------------------------------------
    def on_start(self, ctx: Context) -> None:
        if self.workload:
            ctx.set_timer("next", int(self.rng.random() * self.mean_gap_us))

    def _schedule_next(self, ctx: Context) -> None:
        """Invocations are spaced by exponential gaps (mean clients / rate) measured from the last
        invocation, so the offered rate is the configured one while operations are fast."""
        if self.workload:
            gap = int(self.rng.expovariate(1.0) * self.mean_gap_us)
            ctx.set_timer("next", max(1000, self.last_invoke_us + gap - ctx.now_us))

    # --- issuing --------------------------------------------------------------------------------
    def _new_op(self) -> tuple[str, str, object]:
        r = self.rng
        f = r.choice(("read", "write", "write", "cas"))
        key = f"k{r.randint(1, self.workload.keys)}"
        value: object = None
        if f == "write":
            value = r.randint(1, 5)
        elif f == "cas":
            value = [r.randint(1, 5), r.randint(1, 5)]
        return f, key, value

    def submit(self, ctx: Context, target: str, f: str, key: str, value) -> int:
        req = self.next_req
        self.next_req += 1
        self.pending[req] = {"f": f, "key": key, "value": value, "target": target}
        self.records.append({"type": "client", "client": self.id, "req": req, "op": "invoke",
                             "f": f, "key": key, "value": value, "node": target})
        self._send(ctx, req)
        ctx.set_timer(f"timeout:{req}", self.timeout_us)
        return req

    def _send(self, ctx: Context, req: int) -> None:
        p = self.pending[req]
        ctx.send(p["target"], {"kind": "ClientRequest", "client": self.id, "req": req,
                               "op": p["f"], "key": p["key"], "value": p["value"]})

    def _complete(self, ctx: Context, req: int, outcome: str, value) -> None:
        p = self.pending.pop(req)
        ctx.cancel_timer(f"timeout:{req}")
        ctx.cancel_timer(f"retry:{req}")
        self.records.append({"type": "client", "client": self.id, "req": req, "op": outcome,
                             "f": p["f"], "key": p["key"], "value": value})
        if self.workload and not self.pending:
            self._schedule_next(ctx)

    # --- inputs ---------------------------------------------------------------------------------
    def on_timer(self, ctx: Context, name: str) -> None:
        if name == "next":
            if not self.pending:
                f, key, value = self._new_op()
                target = self.leader if self.leader else self.rng.choice(self.servers)
                self.last_invoke_us = ctx.now_us
                self.submit(ctx, target, f, key, value)
            return
        what, _, req_s = name.partition(":")
        req = int(req_s)
        if req not in self.pending:
            return
        if what == "timeout":
            self.leader = None
            self._complete(ctx, req, "info", self.pending[req]["value"])
        elif what == "retry":
            self._send(ctx, req)

    def on_message(self, ctx: Context, src: str, msg: dict) -> None:
        if msg.get("kind") != "ClientReply":
            return
        req = msg["req"]
        p = self.pending.get(req)
        if p is None or src != p["target"]:
            return  # a late or duplicated reply to something already finished
        if msg.get("error") == "not_leader":
            hint = msg.get("leader")
            self.leader = hint
            if hint and hint != src:
                p["target"] = hint
                self._send(ctx, req)
            else:
                others = [s for s in self.servers if s != src] or self.servers
                p["target"] = self.rng.choice(others)
                ctx.set_timer(f"retry:{req}", RETRY_US)
            return
        self.leader = src
        if msg.get("ok"):
            value = msg.get("value") if p["f"] == "read" else p["value"]
            self._complete(ctx, req, "ok", value)
        else:
            self._complete(ctx, req, "fail", p["value"])

    def view(self, now_us: int) -> dict:
        return {"kind": "client", "pending": len(self.pending), "leader": self.leader}

    def digest_state(self):
        return {"pending": sorted([[k, v["target"]] for k, v in self.pending.items()]),
                "leader": self.leader, "next_req": self.next_req}
