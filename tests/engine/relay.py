"""A toy protocol for the seam's tests: a round-robin load balancer in front of a few backends.

It is not a lesson; it exists to prove that a protocol unlike Raft plugs in through the registry
alone (`REGISTRY["relay"] = "tests.engine.relay"`): two node kinds in a star topology with one
entry node, the open-loop workload, a protocol action aimed at a node other than the one it
names (`drain` a backend: the balancer stops sending it work), a nemesis target, its own checker
and transcript words.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from engine.actions import ProtocolAction
from engine.checkers.base import Checker
from engine.node import Node
from engine.protocols import ProtocolSpec, Topology, Words
from engine.validation import Strict
from engine.workloads.open_loop import request_words


class RelayConfig(Strict):
    max_queue: int = Field(50, ge=1, le=10_000)


def relay_topology(scenario) -> Topology:
    shape = scenario.topology or {"backends": scenario.nodes}
    n = shape.get("backends")
    if set(shape) != {"backends"} or not isinstance(n, int) or not 1 <= n <= 20:
        raise ValueError("topology.backends: a number of backends from 1 to 20")
    backends = [f"b{i}" for i in range(1, n + 1)]
    return Topology((("lb", "balancer"),) + tuple((b, "backend") for b in backends),
                    tuple(("lb", b) for b in backends), entry=("lb",))


class Balancer(Node):
    kind = "balancer"

    def __init__(self, nid, topology, config, rng, persistent=None):
        super().__init__(nid, topology.neighbours(nid), config, rng)
        self.next = 0
        self.drained: set[str] = set()
        self.waiting: dict[tuple[str, int], str] = {}  # (client, req) -> backend
        self._told = None

    def on_message(self, ctx, src, msg):
        if msg["kind"] == "ClientRequest":
            live = [b for b in self.peers if b not in self.drained] or self.peers
            b = live[self.next % len(live)]
            self.next += 1
            self.waiting[(msg["client"], msg["req"])] = b
            ctx.send(b, {**msg, "kind": "Work"})
        elif msg["kind"] == "Done":
            if self.waiting.pop((msg["client"], msg["req"]), None) is not None:
                ctx.send(msg["client"], {"kind": "ClientReply", "req": msg["req"], "ok": msg["ok"]})

    def on_command(self, ctx, command):
        if command["do"] == "drain":
            self.drained.add(command["node"])

    def take_state(self):
        told = (len(self.waiting), tuple(sorted(self.drained)))
        if told == self._told:
            return None
        self._told = told
        return {"role": "balancer", "inflight": told[0], "drained": list(told[1])}

    def down_state(self):
        self._told = None
        return {"role": "down", "inflight": 0, "drained": []}

    def view(self, now_us):
        return {"role": "balancer", "inflight": len(self.waiting), "drained": sorted(self.drained)}


class Backend(Node):
    kind = "backend"

    def __init__(self, nid, topology, config, rng, persistent=None):
        super().__init__(nid, topology.neighbours(nid), config, rng)
        self.queue: list[dict] = []
        self.served = 0
        self._told = None

    def on_message(self, ctx, src, msg):
        if msg["kind"] != "Work":
            return
        if len(self.queue) >= self.config.max_queue:
            ctx.send(src, {"kind": "Done", "client": msg["client"], "req": msg["req"], "ok": False})
            return
        self.queue.append(msg)
        if len(self.queue) == 1:
            ctx.set_timer("serve", int(msg["cost_ms"] * 1000))

    def on_timer(self, ctx, name):
        done = self.queue.pop(0)
        self.served += 1
        ctx.send(self.peers[0], {"kind": "Done", "client": done["client"], "req": done["req"], "ok": True})
        if self.queue:
            ctx.set_timer("serve", int(self.queue[0]["cost_ms"] * 1000))

    def take_state(self):
        if len(self.queue) == self._told:
            return None
        self._told = len(self.queue)
        return {"role": "backend", "queue": self._told}

    def down_state(self):
        self._told = None
        return {"role": "down", "queue": 0}

    def view(self, now_us):
        return {"role": "backend", "queue": len(self.queue), "served": self.served}


class Drain(ProtocolAction):
    """Stop sending work to backend `node` (the balancer does it: the action goes there)."""

    do: Literal["drain"]
    node: str

    def target(self) -> str:
        return "lb"


class RepliesAnswerRequests(Checker):
    name = "Replies answer requests"
    explains = "Every completed request was issued, and completed once."
    record_types = ("request",)

    def __init__(self, seed, servers):
        super().__init__(seed, servers)
        self.open: set[tuple[str, int]] = set()

    def observe(self, rec):
        key = (rec["client"], rec["id"])
        if rec["event"] == "arrive":
            self.open.add(key)
        elif key in self.open:
            self.open.discard(key)
        else:
            self.report(rec["t"], [], f"{rec['client']} #{rec['id']} completed twice or unasked")


def message_words(m: dict) -> str:
    if m["kind"] in ("ClientRequest", "Work"):
        return f"{m['kind']} {m['client']}#{m['req']} cost={m['cost_ms']}"
    if m["kind"] == "Done":
        return f"Done {m['client']}#{m['req']} {'ok' if m['ok'] else 'refused'}"
    return f"{m['kind']} #{m['req']} {'ok' if m['ok'] else 'fail'}"


def state_words(rec: dict) -> str:
    rest = {k: v for k, v in rec.items() if k not in ("type", "t", "node", "role")}
    return f"{rec['node']:>4} {rec['role']:<9} {rest}"


def the_balancer(world) -> list[str]:
    return ["lb"]


PROTOCOL = ProtocolSpec(
    name="relay",
    config_model=RelayConfig,
    topology=relay_topology,
    node_factories={"balancer": Balancer, "backend": Backend},
    make_checkers=lambda seed, topology, config: [RepliesAnswerRequests(seed, topology.ids)],
    invariants=((RepliesAnswerRequests.name, RepliesAnswerRequests.explains),),
    actions=(Drain,),
    words=Words(message=message_words, records={"state": state_words, "request": request_words}),
    nemesis_targets={"balancer": the_balancer},
    workloads=("open_loop",),
)
