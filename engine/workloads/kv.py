"""The closed-loop key-value workload (`"workload": {"kind": "kv", ...}`) and the user's client.

Each workload client is a single process in the Jepsen sense: it issues one operation at a time
(`read`, `write` or `cas` on a few keys), waits for its completion and then, after a random pause
drawn from its own RNG stream, issues the next. The history records every invocation and its
completion (`client` records): `ok`, `fail` (the operation certainly did not take effect: a cas
whose expected value did not match) or `info` (a timeout: it may or may not have taken effect, so
it stays open-ended). The linearizability checker reads that history.

The servers speak `ClientRequest {client, req, op, key, value}` and answer `ClientReply {req, ok,
value, error?, leader?}`. A server that cannot serve answers `error: "not_leader"` with a hint of
the node that can; the client re-sends the same operation there (safe: the first did not take it).
Any protocol serving a replicated key-value store (Raft, Multi-Paxos) takes this workload: its
topology's `entry` nodes are the ones clients talk to, and its config names `client_timeout_ms`.

The user's client ("user", always present) sends each `request` action to the node the user
clicked and may have several requests open at once.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, model_validator

from ..actions import ProtocolAction
from ..node import Context, Node
from ..validation import Strict

USER_CLIENT = "user"
RETRY_US = 20_000
MAX_VALUE = 2**53  # client values are integers a browser can hold exactly


class KvWorkload(Strict):
    """Clients issuing read/write/cas on a few keys; `rate_per_s` is the total over all clients."""

    kind: Literal["kv"] = "kv"
    clients: int = Field(3, ge=0, le=100)
    rate_per_s: float = Field(20, ge=0, le=10_000)
    keys: int = Field(3, ge=1, le=100)


def _is_value(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool) and -MAX_VALUE <= v <= MAX_VALUE


class Request(ProtocolAction):
    """The user's own client operation, sent to `node` (a protocol serving the kv workload
    declares this action). The user's client handles it: the node gets a `ClientRequest`."""

    do: Literal["request"]
    node: str
    op: Literal["read", "write", "cas"] = "write"
    key: str = Field("k1", min_length=1, max_length=32, pattern=r"^[\w.:-]+$")
    value: Any = None

    @model_validator(mode="after")
    def _value_shape(self) -> "Request":
        if self.op == "read" and self.value is not None:
            raise ValueError("a read takes no 'value' (leave it out or null)")
        if self.op == "write" and not _is_value(self.value):
            raise ValueError(f"a write needs an integer 'value' between -{MAX_VALUE} and {MAX_VALUE}")
        if self.op == "cas" and not (
            isinstance(self.value, (list, tuple)) and len(self.value) == 2
            and all(_is_value(v) for v in self.value)
        ):
            raise ValueError("a cas needs 'value': [expected, new] (two integers)")
        return self

    def target(self) -> str:
        return USER_CLIENT


def build(workload: KvWorkload | None, topology, config) -> list[tuple[str, Any]]:
    """The clients, in boot order: c1..cN when the workload runs, then the user's client.
    Each is (id, factory(nid, topology, config, rng, persistent))."""
    out = []
    if workload is not None and workload.clients > 0 and workload.rate_per_s > 0:
        for i in range(1, workload.clients + 1):
            out.append((f"c{i}", lambda nid, topo, cfg, rng, _p: ClientNode(nid, topo.entry, cfg, rng, workload)))
    out.append((USER_CLIENT, lambda nid, topo, cfg, rng, _p: ClientNode(nid, topo.entry, cfg, rng, None)))
    return out


# --- words ------------------------------------------------------------------------------------
def op_words(cmd: dict) -> str:
    """`write k1=3`, `cas k1=3->4`, `read k1` (a command, a request or a log entry's command)."""
    v = cmd["value"]
    v = "" if v is None else f"={v[0]}->{v[1]}" if isinstance(v, list) else f"={v}"
    return f"{cmd['op']} {cmd['key']}{v}"


def request_words(m: dict) -> str:
    return f"ClientRequest #{m['req']} {op_words(m)}"


def reply_words(m: dict) -> str:
    if m.get("error"):
        return f"ClientReply #{m['req']} {m['error']} leader={m.get('leader')}"
    return f"ClientReply #{m['req']} {'ok' if m['ok'] else 'fail'} value={m.get('value')}"


def client_words(rec: dict) -> str:
    """A `client` history record."""
    return f"{rec['client']:>4} {rec['op']} {rec['f']} {rec['key']} {rec['value']}"


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

    def on_command(self, ctx: Context, command: dict) -> None:
        """The user's `request` action (see `Request`)."""
        if command["do"] == "request":
            self.submit(ctx, command["node"], command["op"], command["key"], command["value"])

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
