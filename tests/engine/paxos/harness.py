"""A hand-driven cluster for Paxos unit tests (etcd-raft's style): nothing is delivered until the
test says which message goes where, timers fire only when the test fires them, and the records
(send, deliver, drop, state, client) have the kernel's shape, so the real checkers read them."""

from __future__ import annotations

from engine import rng as rngmod
from engine.protocols import Topology
from engine.protocols.paxos import make_server
from engine.protocols.paxos.checkers import make_checkers
from engine.protocols.paxos.config import PaxosConfig


class _Ctx:
    def __init__(self, net: "Net", nid: str):
        self.net = net
        self.node_id = nid

    @property
    def now_us(self) -> int:
        return self.net.now_us

    def send(self, to, msg):
        self.net._send(self.node_id, to, msg)

    def set_timer(self, name, delay_us):
        self.net.timers[self.node_id][name] = self.net.now_us + delay_us

    def cancel_timer(self, name):
        self.net.timers[self.node_id].pop(name, None)

    def persist(self):
        """Writes take no time in this harness (the kernel's storage model is engine/storage.py)."""


class Net:
    def __init__(self, n: int = 3, seed: int = 1, start: bool = True, **config):
        self.servers = [f"n{i}" for i in range(1, n + 1)]
        self.config = PaxosConfig(**config)
        self.config.check_nodes(self.servers)
        self.seed = seed
        self.topology = Topology.mesh(self.servers)
        self.checkers = make_checkers(seed, self.topology, self.config)
        self.now_us = 0
        self.records: list[dict] = []
        self.flight: list[tuple[int, str, str, dict]] = []  # (id, from, to, msg) in send order
        self.next_id = 1
        self.nodes: dict = {}
        self.timers: dict[str, dict[str, int]] = {}
        self.persisted: dict = {}
        self.replies: list[tuple[str, dict]] = []  # messages to non-servers (clients)
        for nid in self.servers:
            self._boot(nid, None, start)

    # --- plumbing -------------------------------------------------------------------------------
    def _boot(self, nid, persistent, start=True):
        rng = rngmod.stream(self.seed, f"node:{nid}")
        self.nodes[nid] = make_server(nid, self.topology, self.config, rng, persistent)
        self.timers[nid] = {}
        if start:
            self.nodes[nid].on_start(_Ctx(self, nid))
        self._after(nid)

    def emit(self, rec: dict) -> None:
        rec["t"] = self.now_us / 1000
        self.records.append(rec)
        for c in self.checkers:
            if c.record_types is None or rec["type"] in c.record_types:
                c.observe(rec)

    def _send(self, src, dst, msg):
        mid = self.next_id
        self.next_id += 1
        self.emit({"type": "send", "id": mid, "from": src, "to": dst, "msg": msg})
        if dst in self.nodes:
            self.flight.append((mid, src, dst, msg))
        else:
            self.replies.append((dst, msg))

    def _after(self, nid):
        node = self.nodes.get(nid)
        if node is None:
            return
        st = node.take_state()
        if st is not None:
            self.emit({"type": "state", "node": nid, **st})

    def tick_us(self, us: int = 1000) -> None:
        self.now_us += us

    # --- driving ----------------------------------------------------------------------------------
    def find(self, kind=None, src=None, dst=None, **fields) -> list[tuple[int, str, str, dict]]:
        out = []
        for entry in self.flight:
            _mid, s, d, m = entry
            if ((kind is None or m["kind"] == kind) and (src is None or s == src)
                    and (dst is None or d == dst)
                    and all(m.get(k) == v for k, v in fields.items())):
                out.append(entry)
        return out

    def deliver(self, kind=None, src=None, dst=None, **fields) -> dict:
        """Deliver the oldest message in flight that matches; returns it."""
        found = self.find(kind, src, dst, **fields)
        assert found, f"no {kind} {src}->{dst} {fields} in flight: {[(s, d, m['kind']) for _, s, d, m in self.flight]}"
        mid, s, d, m = found[0]
        self.flight.remove(found[0])
        self.tick_us()
        self.emit({"type": "deliver", "id": mid})
        self.nodes[d].on_message(_Ctx(self, d), s, m)
        self._after(d)
        return m

    def deliver_all(self, kind=None, src=None, dst=None, **fields) -> int:
        """Deliver every matching message in flight now (not those sent meanwhile)."""
        batch = self.find(kind, src, dst, **fields)
        for mid, s, d, m in batch:
            if (mid, s, d, m) in self.flight:
                self.flight.remove((mid, s, d, m))
                self.tick_us()
                self.emit({"type": "deliver", "id": mid})
                if d in self.nodes:
                    self.nodes[d].on_message(_Ctx(self, d), s, m)
                    self._after(d)
        return len(batch)

    def settle(self, limit: int = 10_000) -> None:
        """Deliver everything, in send order, until nothing is in flight."""
        for _ in range(limit):
            if not self.flight:
                return
            mid, s, d, m = self.flight[0]
            self.deliver(src=s, dst=d, kind=m["kind"])
        raise AssertionError("messages kept flowing")

    def drop(self, kind=None, src=None, dst=None, **fields) -> int:
        found = self.find(kind, src, dst, **fields)
        for entry in found:
            self.flight.remove(entry)
            self.emit({"type": "drop", "id": entry[0], "why": "loss"})
        return len(found)

    def fire(self, nid: str, name: str) -> None:
        assert name in self.timers[nid], f"{nid} has no timer {name!r}: {self.timers[nid]}"
        self.tick_us()
        del self.timers[nid][name]
        self.nodes[nid].on_timer(_Ctx(self, nid), name)
        self._after(nid)

    def command(self, nid: str, command: dict) -> None:
        self.tick_us()
        self.nodes[nid].on_command(_Ctx(self, nid), command)
        self._after(nid)

    def propose(self, nid: str, value) -> None:
        self.command(nid, {"do": "propose", "value": value})

    def request(self, nid: str, client: str, req: int, op: str, key: str = "k1", value=None) -> None:
        """A client's request arriving at a server (the client itself is not simulated)."""
        self.tick_us()
        self.nodes[nid].on_message(_Ctx(self, nid), client, {
            "kind": "ClientRequest", "client": client, "req": req, "op": op, "key": key,
            "value": value})
        self._after(nid)

    def crash(self, nid: str) -> None:
        self.tick_us()
        node = self.nodes.pop(nid)
        self.persisted[nid] = node.persistent_state()
        self.timers[nid] = {}
        for entry in [e for e in self.flight if e[2] == nid]:
            self.flight.remove(entry)
            self.emit({"type": "drop", "id": entry[0], "why": "down"})
        self.emit({"type": "state", "node": nid, **node.down_state()})

    def restart(self, nid: str) -> None:
        self.tick_us()
        self._boot(nid, self.persisted.pop(nid))

    # --- reading --------------------------------------------------------------------------------
    @property
    def violations(self) -> list[dict]:
        return [v for c in self.checkers for v in c.violations]

    def broken(self) -> set[str]:
        return {v["invariant"] for v in self.violations}

    def chosen(self, slot: int = 0) -> list:
        """The values chosen in `slot` (from the acceptors' records), in the order chosen."""
        mirror = self.checkers[0]
        return [mirror.values[k] for k in mirror.chosen.get(slot, {})]

    def learned(self, slot: int = 0) -> dict[str, object]:
        return {nid: n.learned[slot] for nid, n in sorted(self.nodes.items()) if slot in n.learned}
