"""The discrete-event kernel.

Virtual time is an integer number of microseconds (`now_us`); records carry `t` in milliseconds.
The event queue is a heap ordered by (time, priority, insertion counter): user and scenario actions
(priority 0) run before anything else due at the same microsecond, and ties between other events
break on the counter, so a run is a pure function of seed + scenario + actions.

A user's click made at `now_us` is scheduled at `now_us + 1` with priority 0 and recorded with that
time. Replaying the recorded action list therefore puts it at exactly the same place among the other
events, which is what makes rewinding, forking and share links reproduce a run byte for byte.

The kernel knows no protocol. It asks the scenario's protocol spec (`engine/protocols/`) for the
topology and how to build each node kind, the scenario's workload module (`engine/workloads/`) for
its clients, and hands every action to the action itself (`apply(world)`: the generic faults act on
the kernel and the network, a protocol's actions become `on_command` calls on the node they name).

Observers receive every record (the trace vocabulary, see docs/trace-format.md). Checkers are
observers that belong to the world (they are snapshotted with it); other observers (a trace file,
a browser session) are attached from outside and are not. The record types are the kernel's, the
workload's and the protocol's; a node may emit others too, and they are routed like the rest.
"""

from __future__ import annotations

import hashlib
import heapq
import pickle
import types
from typing import Any, Callable, ClassVar, Final

import orjson

from . import rng as rngmod
from ._mypyc import mypyc_attr
from .actions import action_to_dict
from .nemesis import NemesisDriver
from .network import LinkSpec, Network, ms_to_us
from .node import Context, Node
from .protocols import get_protocol
from .scenario import Scenario, ScenarioError, parse_action
from .storage import Disk
from .workloads import get_workload

# The kinds of events (Final: compiled, engine/native.py, they are constants in the code).
DELIVER: Final = 0
TIMER: Final = 1
ACTION: Final = 2
NEMESIS: Final = 3
RELEASE: Final = 4
WRITE: Final = 5
PRIO_ACTION: Final = 0
PRIO_EVENT: Final = 1


# The event queue's heap: heapq's own algorithm (the same pushes and pops leave the same list, so
# snapshots and the order of ties are heapq's), with the comparison taken apart: two events almost
# always differ in their time, compared as integers, and only equal times compare whole tuples.
# Compiled, that saves the generic tuple comparison (most of the heap's cost); as Python it would
# be slower than heapq's C, so the pure engine uses heapq itself (the end of this module).
def _before(a: tuple, b: tuple) -> bool:
    ta: int = a[0]
    tb: int = b[0]
    if ta != tb:
        return ta < tb
    return a < b


def _sift_down(heap: list, start: int, pos: int) -> None:
    item: tuple = heap[pos]
    t: int = item[0]
    while pos > start:
        parent_pos = (pos - 1) >> 1
        parent: tuple = heap[parent_pos]
        tp: int = parent[0]
        if t < tp or (t == tp and item < parent):
            heap[pos] = parent
            pos = parent_pos
            continue
        break
    heap[pos] = item


def _heappush(heap: list, item: tuple) -> None:
    heap.append(item)
    _sift_down(heap, 0, len(heap) - 1)


def _heappop(heap: list) -> tuple:
    last: tuple = heap.pop()
    if not heap:
        return last
    top: tuple = heap[0]
    end = len(heap)
    pos = 0
    child = 1
    while child < end:
        right = child + 1
        if right < end:
            c: tuple = heap[child]
            r: tuple = heap[right]
            if not _before(c, r):
                child = right
        heap[pos] = heap[child]
        pos = child
        child = 2 * pos + 1
    heap[pos] = last
    _sift_down(heap, 0, pos)
    return top
KERNEL_RECORDS: Final = ("send", "deliver", "drop", "fault", "state", "end")
MESSAGE_RECORDS: Final = ("send", "deliver", "drop")
# A queued event: (time us, priority, insertion counter, kind, and three kind-specific fields).
Event = tuple[int, int, int, int, Any, Any, Any]

Observer = Callable[[dict], None]


@mypyc_attr(allow_interpreted_subclasses=True, serializable=True)
class KernelContext(Context):
    """The kernel's Context. The common cases take a short path straight into the kernel's
    structures: sending on a plain network (every link the default one: no loss, duplication,
    partition or cut, and nobody recording messages) and re-arming a timer later, which only moves
    its deadline (see `Simulation._set_timer`). Anything else goes through the general paths, with
    the same random draws."""

    # It keeps the kernel's structures it writes to (each made once per world, so these stay its
    # own, in a restored world too: one pickle keeps shared references shared).

    def __init__(self, sim: "Simulation", node_id: str, now_us: int):
        super().__init__(sim, node_id, now_us)
        self.timers = sim._timers.setdefault(node_id, {})  # the same dict for the node's lifetime
        self.writes = sim._writes.setdefault(node_id, [])  # its pending writes (engine/storage.py)
        self.recording = sim._records_wanted
        self._net = sim.network
        self._rand = sim.net_rng.random
        self._flight = sim.flight
        self._queue = sim._queue

    def send(self, to: str, msg: dict) -> None:
        sim = self._sim
        if self.writes:  # a write is pending: the message waits for it (engine/storage.py)
            sim._outbox[self.node_id].append((self.writes[-1][1], to, msg))
            return
        net = self._net
        if not net.plain or sim._want_msgs:
            sim._send(self.node_id, to, msg)
            return
        now = sim.now_us
        span = net.lat_span
        arrive = now + net.lat_lo + (int(self._rand() * span) if span else 0)
        mid = sim._next_msg_id
        sim._next_msg_id = mid + 1
        self._flight[mid] = (self.node_id, to, msg, now, arrive)
        sim._counter = cnt = sim._counter + 1
        _heappush(self._queue, (arrive, PRIO_EVENT, cnt, DELIVER, mid, None, None))

    def set_timer(self, name: str, delay_us: int) -> None:
        now = self.now_us  # (the kernel's: it is set whenever the context is handed out)
        t = now + delay_us if delay_us > 0 else now
        timers = self.timers
        tm = timers.get(name)
        if tm is not None and tm[2] <= t:
            tm[0] = t
            return
        sim = self._sim  # (`Simulation._set_timer`, inline)
        sim._counter = gen = sim._counter + 1
        timers[name] = [t, gen, t]
        _heappush(self._queue, (t, PRIO_EVENT, gen, TIMER, self.node_id, name, gen))

    def cancel_timer(self, name: str) -> None:
        self.timers.pop(name, None)


@mypyc_attr(allow_interpreted_subclasses=True, serializable=True)
class Simulation:
    # Every attribute of a world (what a snapshot holds, less the transient ones). Compiled with
    # mypyc (engine/native.py) they are the native class's fields.
    _FIELDS: ClassVar[tuple[str, ...]] = (
        "scenario", "seed", "config", "protocol", "topology", "record_types", "now_us", "events",
        "_queue", "_counter", "_next_msg_id", "_observers", "flight", "_timers", "_contexts",
        "actions", "servers", "network", "net_rng", "status", "nodes", "persisted", "rngs",
        "_held", "manual", "waiting", "checkers", "clients", "nemesis", "_records_wanted",
        "_want_msgs", "_routes", "_sinks", "_state_sinks", "disk", "_writes", "_outbox",
        "_durable", "fault_rng",
    )
    _TRANSIENT: ClassVar[tuple[str, ...]] = ("_observers", "_routes", "_sinks", "_state_sinks")  # not in snapshots

    def __init__(self, scenario: Scenario, *, checkers: bool = True, protocol=None):
        """`protocol` overrides the registry's (benchmarks and tests of the kernel itself)."""
        self.scenario = scenario
        self.seed = scenario.seed
        self.config = scenario.config
        spec = self.protocol = protocol or get_protocol(scenario.protocol)
        self.topology = scenario.layout if protocol is None else spec.topology(scenario)
        self.now_us = 0
        self.events = 0
        self._queue: list[Event] = []
        self._counter = 0
        self._next_msg_id = 1
        self._observers: list[tuple[Observer, bool]] = []
        self.flight: dict[int, tuple[str, str, dict, int, int]] = {}
        # nid -> timer name -> [deadline, generation, time its heap entry is queued at]
        self._timers: dict[str, dict[str, list[int]]] = {}
        self._contexts: dict[str, Context] = {}
        self.actions: list[dict] = []  # user actions, as recorded (scenario + live clicks)

        self.servers = self.topology.ids  # the protocol's nodes, of every kind (not the clients)
        net = scenario.network
        self.network = Network(
            LinkSpec(ms_to_us(net.latency_ms_min), ms_to_us(net.latency_ms_max), net.loss, net.duplicate),
            self.servers,
        )
        self.net_rng = rngmod.stream(self.seed, "network")
        self.status: dict[str, str] = {}
        self.nodes: dict[str, Node] = {}
        self.persisted: dict[str, Any] = {}
        self.rngs: dict[str, Any] = {}
        self._held: dict[str, list[tuple]] = {}
        self.manual = False  # manual delivery: arriving messages wait (engine/manual.py)
        self.waiting: dict[int, None] = {}  # ids of the messages waiting, in arrival order
        # The persistence model (engine/storage.py), None without a storage latency. Per node: its
        # pending writes [done_us, seq, issued_us, state], the messages held behind them
        # (seq, to, msg), and the state of its last completed write (what a crash keeps).
        st = scenario.storage
        self.disk = Disk(st, self.seed) if st is not None and st.on else None
        self._writes: dict[str, list[list]] = {}
        self._outbox: dict[str, list[tuple]] = {}
        self._durable: dict[str, Any] = {}
        self.fault_rng: Any = None  # the `faults` stream, made on first use (engine/faults.py)

        # The scenario's workload, or the protocol's default kind (its user client, if any).
        wl: Any = scenario.workload
        kind = wl.kind if wl is not None else (spec.workloads[0] if spec.workloads else None)
        workload = get_workload(kind) if kind is not None else None
        types = KERNEL_RECORDS + (workload.record_types if workload else ()) + spec.record_types
        self.record_types = tuple(dict.fromkeys(types))

        self.checkers = list(spec.make_checkers(self.seed, self.topology, self.config)) if checkers else []
        self._route_checkers()
        self._refresh_wants()

        for nid in self.servers:
            self.rngs[nid] = rngmod.stream(self.seed, f"node:{nid}")
            self._boot(nid, persistent=None)
        self.clients: list[str] = []  # the workload's nodes, after the topology's
        for cid, factory in (workload.build(wl, self.topology, self.config) if workload else ()):
            self.clients.append(cid)
            self.rngs[cid] = rngmod.stream(self.seed, f"client:{cid}")
            self._add_client(cid, factory)

        self.nemesis = None
        if scenario.nemesis is not None:
            aim = next(iter(spec.nemesis_targets.values()), None)
            self.nemesis = NemesisDriver(scenario.nemesis, rngmod.stream(self.seed, "nemesis"),
                                         self.servers, net.loss, net.duplicate, aim)
            self._push(ms_to_us(scenario.nemesis.interval_ms), PRIO_EVENT, NEMESIS, None, None, None)
        # One dump of the whole list is much cheaper than one per action (5000 in a long link).
        for a, rec in zip(scenario.actions, scenario.to_dict().get("actions", ())):
            self._schedule_action(a, ms_to_us(a.at), rec)

    # --- observers ----------------------------------------------------------------------------
    def subscribe(self, fn: Observer, messages: bool = True) -> None:
        """Receive every record from now on; `messages=False` skips send/deliver/drop records."""
        self._observers.append((fn, messages))
        self._refresh_wants()

    def unsubscribe(self, fn: Observer) -> None:
        self._observers = [(f, m) for f, m in self._observers if f != fn]  # == : bound methods
        self._refresh_wants()

    def _refresh_wants(self) -> None:
        """Recompute, per record type, everyone who reads it: the checkers that declared it, then
        the outside observers (message records only to those who asked for them).

        While nobody wants records, the inline delivery path does not ask nodes for their state
        changes; so when someone starts wanting them, every running node's "last reported state"
        is brought up to now first, and the first record is a change from here, not from the
        last timer it handled."""
        was_wanted = getattr(self, "_records_wanted", True)
        self._sinks = {t: self._routes[t] + [fn for fn, m in self._observers
                                             if m or t not in MESSAGE_RECORDS]
                       for t in self.record_types}
        self._state_sinks = self._sinks["state"]
        self._records_wanted = bool(self._observers or self.checkers)
        self._want_msgs = any(self._sinks[t] for t in MESSAGE_RECORDS)
        for ctx in self._contexts.values():
            ctx.recording = self._records_wanted
        if self._records_wanted and not was_wanted:
            for nid, node in self.nodes.items():
                if self.status[nid] != "down":
                    node.take_state()
                    if node.records:
                        node.records.clear()

    def _route_checkers(self) -> None:
        """Each checker is called only for the record types it declares."""
        self._routes = {t: [c.observe for c in self.checkers
                            if c.record_types is None or t in c.record_types]
                        for t in self.record_types}

    def _emit(self, rec: dict) -> None:
        try:
            sinks = self._sinks[rec["type"]]
        except KeyError:  # a record type nobody declared: route it from now on
            self.record_types += (rec["type"],)
            self._route_checkers()
            self._refresh_wants()
            sinks = self._sinks[rec["type"]]
        for fn in sinks:
            fn(rec)

    # --- queue --------------------------------------------------------------------------------
    def _push(self, t: int, prio: int, kind: int, a, b, c) -> None:
        self._counter += 1
        _heappush(self._queue, (t, prio, self._counter, kind, a, b, c))

    @property
    def now_ms(self) -> float:
        return self.now_us / 1000

    def next_event_ms(self) -> float | None:
        return self._queue[0][0] / 1000 if self._queue else None

    # --- effects (called through Context) -----------------------------------------------------
    def _send(self, src: str, dst: str, msg: dict) -> None:
        net = self.network
        spec = net.overrides.get((src, dst), net.default) if net.overrides else net.default
        copies = 1
        rng = self.net_rng
        if spec.duplicate and rng.random() < spec.duplicate:
            copies = 2
        for _ in range(copies):
            mid = self._next_msg_id
            self._next_msg_id += 1
            lo, hi = spec.latency_us_min, spec.latency_us_max
            arrive = self.now_us + (lo if lo == hi else lo + int(rng.random() * (hi - lo)))
            if self._want_msgs:
                self._emit({"type": "send", "t": self.now_us / 1000, "id": mid, "from": src,
                                "to": dst, "msg": msg})
            why = net.blocked(src, dst) if not net.open else None
            if why is None and spec.loss and rng.random() < spec.loss:
                why = "loss"
            if why is not None:
                if self._want_msgs:
                    self._emit({"type": "drop", "t": self.now_us / 1000, "id": mid, "why": why})
                continue
            self.flight[mid] = (src, dst, msg, self.now_us, arrive)
            self._counter += 1
            _heappush(self._queue, (arrive, PRIO_EVENT, self._counter, DELIVER, mid, None, None))

    def _ctx(self, nid: str) -> Context:
        ctx = self._contexts.get(nid)
        if ctx is None:
            ctx = self._contexts[nid] = KernelContext(self, nid, self.now_us)
        ctx.now_us = self.now_us
        return ctx

    def _set_timer(self, nid: str, name: str, delay_us: int) -> None:
        """Timers are lazy: pushing a deadline later (a failure-detection timer reset by every message from its peer)
        only moves the deadline; the queued heap entry, when it comes due, re-queues itself at the
        new deadline. Only an earlier deadline, or a timer not queued, costs a heap push (with a
        new generation, so the old entry is ignored). Delays are integer microseconds."""
        t = self.now_us + delay_us if delay_us > 0 else self.now_us
        timers = self._timers[nid]
        tm = timers.get(name)
        if tm is not None and tm[2] <= t:
            tm[0] = t
            return
        self._counter = gen = self._counter + 1
        timers[name] = [t, gen, t]
        _heappush(self._queue, (t, PRIO_EVENT, gen, TIMER, nid, name, gen))

    def _cancel_timer(self, nid: str, name: str) -> None:
        self._timers[nid].pop(name, None)

    def _timer_due(self, nid: str, name: str, gen: int, t: int) -> bool:
        """A queued timer entry came up: is it live and really due (else re-queue or drop)?"""
        tm = self._timers[nid].get(name)
        if tm is None or tm[1] != gen:
            return False  # cancelled, replaced, or the node crashed
        deadline = tm[0]
        if deadline > t:
            self._counter += 1
            tm[2] = deadline
            _heappush(self._queue, (deadline, PRIO_EVENT, self._counter, TIMER, nid, name, gen))
            return False
        return True

    # --- stable storage (engine/storage.py) ----------------------------------------------------
    def _persist(self, nid: str) -> None:
        """Queue a write of the node's persistent state as it is now; a write already issued at
        this instant takes it instead (a group commit). Writes complete in order."""
        writes = self._writes[nid]
        state = self.nodes[nid].persistent_state()
        now = self.now_us
        if writes and writes[-1][2] == now:
            writes[-1][3] = state
            return
        start = writes[-1][0] if writes else now
        disk = self.disk
        assert disk is not None  # (only a world with a storage latency persists)
        done = start + disk.draw_us(nid)
        self._counter = seq = self._counter + 1
        writes.append([done, seq, now, state])
        _heappush(self._queue, (done, PRIO_EVENT, seq, WRITE, nid, seq, None))

    def _write_done(self, nid: str, seq: int) -> None:
        """A write completes: its state is what a crash keeps from now on, and the messages held
        behind it leave (if the node is running; a paused node releases them when it resumes)."""
        writes = self._writes.get(nid)
        if not writes or writes[0][1] != seq:
            return  # lost in a crash
        self._durable[nid] = writes.pop(0)[3]
        if self.status[nid] == "up":
            self._flush(nid)
            self._tell_written(nid)

    def _tell_written(self, nid: str) -> None:
        """Call the node's `on_written` if its class has one (no other node notices writes)."""
        node = self.nodes[nid]
        if type(node).on_written is not Node.on_written:
            node.on_written(self._ctx(nid))
            self._after(nid, node)

    def _flush(self, nid: str) -> None:
        """Send the held messages whose writes are all done, in the order they were sent."""
        out = self._outbox[nid]
        writes = self._writes[nid]
        first_pending = writes[0][1] if writes else None
        n = 0
        for seq, to, msg in out:
            if first_pending is not None and seq >= first_pending:
                break
            self._send(nid, to, msg)
            n += 1
        del out[:n]

    def disk_busy(self, nid: str) -> bool:
        """Whether the node has a write in flight (the page's disk indicator)."""
        return bool(self._writes.get(nid))

    # --- node lifecycle -----------------------------------------------------------------------
    def _boot(self, nid: str, persistent: Any) -> None:
        """Build (or rebuild, after a crash) a topology node with its kind's factory."""
        factory = self.protocol.node_factories[self.topology.kind(nid)]
        node = factory(nid, self.topology, self.config, self.rngs[nid], persistent)
        self.nodes[nid] = node
        self.status[nid] = "up"
        self._timers.setdefault(nid, {}).clear()
        if self.disk is not None:
            self._durable[nid] = node.persistent_state()  # what it booted from is on disk
            self._outbox.setdefault(nid, [])
        node.on_start(self._ctx(nid))
        self._after(nid, node)

    def _add_client(self, cid: str, factory) -> None:
        node = factory(cid, self.topology, self.config, self.rngs[cid], None)
        self.nodes[cid] = node
        self.status[cid] = "up"
        self._timers.setdefault(cid, {}).clear()
        node.on_start(self._ctx(cid))
        self._after(cid, node)

    def _after(self, nid: str, node: Node) -> None:
        """Collect what the node wants recorded after it handled an input."""
        if self._records_wanted:
            st = node.take_state()
            if st is not None:
                st["type"] = "state"
                st["t"] = self.now_us / 1000
                st["node"] = nid
                for fn in self._state_sinks:
                    fn(st)
            recs = node.records
            if recs:
                for r in recs:
                    r["t"] = self.now_us / 1000
                    self._emit(r)
                recs.clear()
        else:
            node.take_state()
            if node.records:
                node.records.clear()

    # --- main loop ----------------------------------------------------------------------------
    def step(self) -> bool:
        """Process the next event. Returns False when the queue is empty."""
        q = self._queue
        while q:
            ev = _heappop(q)
            t: int = ev[0]
            kind: int = ev[3]
            a, b, c = ev[4], ev[5], ev[6]
            if kind == TIMER and not self._timer_due(a, b, c, t):
                continue
            self.now_us = t
            self.events += 1
            self._dispatch(kind, a, b, c)
            return True
        return False

    def run_until(self, t_ms: float) -> None:
        """Process every event due at or before t_ms, then set the clock to t_ms.

        The common cases, a message delivered to a running node with no partition or cut in the way
        and a timer of a running node coming due, are handled inline here (they are most of the
        events); everything else goes through `_dispatch`, which does the same. While nobody wants
        records, neither path asks the node for its state (see `_refresh_wants`)."""
        limit = ms_to_us(t_ms)
        q = self._queue
        due = self._timer_due
        dispatch = self._dispatch
        flight = self.flight
        status = self.status
        nodes = self.nodes
        contexts = self._contexts
        all_timers = self._timers
        net = self.network
        # Only events other than deliveries and timers (actions, the nemesis, releases, writes)
        # change the network, manual delivery or who wants records, so these are re-read after
        # each of those. (A node's handler acts only through its context, which changes none.)
        fast = net.open and not self.manual
        want_msgs = self._want_msgs
        wanted = self._records_wanted
        events = 0
        try:
            while q and q[0][0] <= limit:
                ev = _heappop(q)  # (taken apart by index: unpacking goes through an iterator)
                t: int = ev[0]
                kind: int = ev[3]
                a = ev[4]
                b = ev[5]
                c = ev[6]
                if kind == 0 and fast:  # DELIVER
                    entry = flight[a]
                    dst = entry[1]
                    if status[dst] == "up":
                        del flight[a]
                        self.now_us = t
                        events += 1
                        if want_msgs:
                            self._emit({"type": "deliver", "t": t / 1000, "id": a})
                        node = nodes[dst]
                        ctx = contexts[dst]
                        ctx.now_us = t
                        node.on_message(ctx, entry[0], entry[2])
                        if wanted:
                            self._after(dst, node)
                        elif node.records:
                            node.records.clear()
                        continue
                elif kind == 1:  # TIMER
                    timers = all_timers[a]
                    tm = timers.get(b)
                    if tm is None or tm[1] != c:
                        continue  # cancelled, replaced, or the node crashed
                    if tm[0] > t:
                        due(a, b, c, t)  # moved later: queued again at its deadline
                        continue
                    if status[a] == "up":
                        del timers[b]
                        self.now_us = t
                        events += 1
                        node = nodes[a]
                        ctx = contexts[a]
                        ctx.now_us = t
                        node.on_timer(ctx, b)
                        if wanted:
                            self._after(a, node)
                        elif node.records:
                            node.records.clear()
                        continue
                self.now_us = t
                events += 1
                dispatch(kind, a, b, c)
                fast = net.open and not self.manual
                want_msgs = self._want_msgs
                wanted = self._records_wanted
        finally:
            self.events += events
        if limit > self.now_us:
            self.now_us = limit

    def run(self) -> None:
        self.run_until(self.scenario.duration_ms)

    def _dispatch(self, kind: int, a, b, c) -> None:
        if kind == DELIVER:
            if self.manual:
                self.waiting[a] = None  # stays in flight, on its link, until an action moves it
                return
            self._arrive(a)
        elif kind == TIMER:
            st = self.status[a]
            if st == "paused":
                self._held[a].append((TIMER, b, c, None))
                return
            if st != "up":
                return
            del self._timers[a][b]  # live: checked as it left the queue
            node = self.nodes[a]
            node.on_timer(self._ctx(a), b)
            self._after(a, node)
        elif kind == ACTION:
            self._apply_action(a, b)
        elif kind == NEMESIS:
            self._nemesis_tick()
        elif kind == RELEASE:
            self._release(a, b)
        elif kind == WRITE:
            self._write_done(a, b)

    def _arrive(self, a: int) -> None:
        """Message `a` reaches its destination: dropped if it crashed or a partition or cut is in
        the way, held if it is paused, else handled."""
        src, dst, msg, _sent, _arr = self.flight.pop(a)
        st = self.status.get(dst)
        why = None
        net = self.network
        if st == "down":
            why = "down"
        elif not net.open:
            why = net.blocked(src, dst)
        if why is not None:
            if self._want_msgs:
                self._emit({"type": "drop", "t": self.now_us / 1000, "id": a, "why": why})
            return
        if st == "paused":
            self._held[dst].append((DELIVER, a, src, msg))
            self.flight[a] = (src, dst, msg, _sent, _arr)  # still "in flight" to the picture
            return
        if self._want_msgs:
            self._emit({"type": "deliver", "t": self.now_us / 1000, "id": a})
        node = self.nodes[dst]
        ctx = self._contexts[dst]
        ctx.now_us = self.now_us
        node.on_message(ctx, src, msg)
        self._after(dst, node)

    # --- actions ------------------------------------------------------------------------------
    def _schedule_action(self, action, t_us: int, rec: dict | None = None) -> None:
        self._push(t_us, PRIO_ACTION, ACTION, action, "user", None)
        if rec is None:
            rec = action_to_dict(action)
        rec["at"] = t_us / 1000
        self.actions.append(rec)

    def act(self, data: dict) -> dict:
        """Validate a user action and schedule it just after the current instant.

        Raises ScenarioError (naming the bad field) and changes nothing when the action is invalid.
        Returns the action as recorded, with its `at`.
        """
        action = parse_action(data, self.servers, protocol=self.protocol)
        action.check_now(self, "action")
        t = self.now_us + 1
        action = action.model_copy(update={"at": t / 1000})
        self._schedule_action(action, t)
        return self.actions[-1]

    def schedule(self, data: dict) -> dict:
        """Validate a recorded action and schedule it at its own `at` (a timeline being re-enacted
        after a rewind). `at` must not be in the past. Raises ScenarioError, changing nothing."""
        action = parse_action(data, self.servers, protocol=self.protocol)
        t = ms_to_us(action.at)
        if t < self.now_us:
            raise ScenarioError(f"action.at: {action.at} ms is before the current time "
                                f"{self.now_ms} ms")
        self._schedule_action(action, t)
        return self.actions[-1]

    def end_record(self) -> dict:
        """The trace's closing record: the instant the trace was cut."""
        return {"type": "end", "t": self.now_us / 1000}

    def _fault_record(self, action, by: str) -> None:
        if self._records_wanted:
            rec = action_to_dict(action)
            rec.pop("at", None)
            rec["type"] = "fault"
            rec["t"] = self.now_us / 1000
            rec["by"] = by
            self._emit(rec)

    def _apply_action(self, a, by: str | None) -> None:
        if by is not None:  # (None: an action's own later step, recorded by what it does)
            self._fault_record(a, by)
        a.apply(self)

    def apply_now(self, action, by: str) -> None:
        """Apply an action now, recorded as done `by` (an action's later step: `crash_target`)."""
        self._apply_action(action, by)

    def later(self, delay_us: int, action) -> None:
        """Queue an action's later step (not a user action: a replay of `actions` queues it again,
        so it is not recorded there). It runs with the priority of actions."""
        self._push(self.now_us + max(0, delay_us), PRIO_ACTION, ACTION, action, None, None)

    def fault_draw_us(self, span_us: int) -> int:
        """A uniform draw from [0, span_us) from the run's `faults` stream (made on first use)."""
        if span_us <= 0:
            return 0
        if self.fault_rng is None:
            self.fault_rng = rngmod.stream(self.seed, "faults")
        return int(self.fault_rng.random() * span_us)

    # --- what actions do (generic faults call these; protocol actions call `command`) ----------
    def command(self, nid: str, command: dict) -> None:
        """Hand a protocol action to a running node's `on_command`."""
        if self.status[nid] != "up":
            return
        node = self.nodes[nid]
        node.on_command(self._ctx(nid), command)
        self._after(nid, node)

    def crash(self, nid: str) -> None:
        """The node's object is thrown away; its persistent state is kept for a restart."""
        if self.status[nid] == "down":
            return
        node = self.nodes[nid]
        writes = self._writes.get(nid)
        if writes:  # unfinished writes are lost, and the messages held behind them never leave
            self.persisted[nid] = self._durable[nid]
            writes.clear()
        else:
            self.persisted[nid] = node.persistent_state()
        if self._outbox.get(nid):  # (held by a pause after their writes were done: lost too)
            self._outbox[nid].clear()
        self.status[nid] = "down"
        self._timers[nid].clear()
        self._drop_held(self._held.pop(nid, []), "down")
        if self._records_wanted:
            rec = node.down_state()
            rec.update(type="state", t=self.now_us / 1000, node=nid)
            self._emit(rec)

    def restart(self, nid: str) -> None:
        if self.status[nid] == "down":
            self._boot(nid, self.persisted.pop(nid))

    def pause(self, nid: str) -> None:
        """Stop the world for one node: what arrives and what comes due is held."""
        if self.status[nid] == "up":
            self.status[nid] = "paused"
            self._held[nid] = []

    def resume(self, nid: str) -> None:
        if self.status[nid] == "paused":
            self.status[nid] = "up"
            if self.disk is not None:
                self._flush(nid)  # what its writes completed meanwhile released, first
                self._tell_written(nid)
            # The held inputs travel with the release event, so a pause at the same instant
            # starts a fresh buffer instead of swallowing this one.
            self._push(self.now_us, PRIO_EVENT, RELEASE, nid, self._held.pop(nid, []), None)

    # --- manual delivery (engine/manual.py) -----------------------------------------------------
    def set_manual(self, on: bool) -> None:
        """Switch manual delivery; switched off, every waiting message is handled now, in the order
        they arrived (as ordinary deliveries queued at this instant)."""
        self.manual = on
        if not on and self.waiting:
            for mid in self.waiting:
                self._push(self.now_us, PRIO_EVENT, DELIVER, mid, None, None)
            self.waiting = {}

    def deliver_now(self, mid: int) -> None:
        if mid in self.waiting:
            del self.waiting[mid]
            self._arrive(mid)

    def drop_now(self, mid: int) -> None:
        if mid in self.waiting:
            del self.waiting[mid]
            del self.flight[mid]
            if self._want_msgs:
                self._emit({"type": "drop", "t": self.now_us / 1000, "id": mid, "why": "user"})

    def duplicate_now(self, mid: int) -> None:
        """A copy of a waiting message: a new id, sent now, waiting too."""
        if mid not in self.waiting:
            return
        src, dst, msg, _sent, _arr = self.flight[mid]
        copy = self._next_msg_id
        self._next_msg_id += 1
        if self._want_msgs:
            self._emit({"type": "send", "t": self.now_us / 1000, "id": copy, "from": src,
                        "to": dst, "msg": msg})
        self.flight[copy] = (src, dst, msg, self.now_us, self.now_us)
        self.waiting[copy] = None

    def timers_of(self, nid: str) -> dict[str, float]:
        """The timers `nid` has set: name -> deadline (ms)."""
        return {k: tm[0] / 1000 for k, tm in sorted(self._timers.get(nid, {}).items())}

    def fire_now(self, nid: str, name: str) -> None:
        """Fire a timer the node has set, ahead of its deadline (its queued entry is then stale)."""
        if self.status[nid] != "up" or name not in self._timers[nid]:
            return
        del self._timers[nid][name]
        node = self.nodes[nid]
        node.on_timer(self._ctx(nid), name)
        self._after(nid, node)

    def _release(self, nid: str, held: list[tuple]) -> None:
        """A paused node resumes: what arrived and what came due meanwhile is handled in the order
        it happened (held in that order as it left the queue). A delivery is handled unless a
        partition or cut now stands in the way (it was on the wire as far as the network is
        concerned). A held timer fires only if it is still due: the deliveries handled before it
        may have pushed its deadline back (a message that re-arms the node's timer), and then it is
        queued again at its new deadline, exactly as `_timer_due` does on the normal path. If the
        node was paused again or crashed at the same instant, what is left goes back to its buffer
        or is dropped."""
        for i, (kind, a, b, c) in enumerate(held):
            st = self.status.get(nid)
            if st == "paused":
                self._held[nid][:0] = held[i:]
                return
            if st != "up":
                self._drop_held(held[i:], "down")
                return
            node = self.nodes[nid]
            if kind == DELIVER:
                if a not in self.flight:
                    continue
                self.flight.pop(a)
                net = self.network
                why = net.blocked(b, nid) if not net.open else None
                if why is not None:
                    if self._want_msgs:
                        self._emit({"type": "drop", "t": self.now_us / 1000, "id": a, "why": why})
                    continue
                if self._want_msgs:
                    self._emit({"type": "deliver", "t": self.now_us / 1000, "id": a})
                node.on_message(self._ctx(nid), b, c)
            else:
                if not self._timer_due(nid, a, b, self.now_us):
                    continue
                del self._timers[nid][a]
                node.on_timer(self._ctx(nid), a)
            self._after(nid, node)

    def _drop_held(self, held: list[tuple], why: str) -> None:
        """Held deliveries that will never be handled leave the wire with a `drop` record."""
        for kind, mid, _src, _msg in held:
            if kind == DELIVER and self.flight.pop(mid, None) is not None and self._want_msgs:
                self._emit({"type": "drop", "t": self.now_us / 1000, "id": mid, "why": why})

    def _nemesis_tick(self) -> None:
        assert self.nemesis is not None
        for action in self.nemesis.tick(self.now_us, self):
            self._apply_action(action, "nemesis")
        nxt = self.nemesis.next_tick_us(self.now_us)
        if nxt is not None:
            self._push(nxt, PRIO_EVENT, NEMESIS, None, None, None)

    # --- reading the world (never changes it) --------------------------------------------------
    @property
    def violations(self) -> list[dict]:
        out = []
        for c in self.checkers:
            out.extend(c.violations)
        return sorted(out, key=lambda v: (v["t"], v["invariant"]))

    def roles(self) -> dict[str, str]:
        """Each topology node's `role` as its view tells it (its kind if it has none), or down."""
        out = {}
        for nid in self.servers:
            node = self.nodes[nid]
            out[nid] = ("down" if self.status[nid] == "down"
                        else node.view(self.now_us).get("role", node.kind))
        return out

    def views(self) -> dict[str, dict]:
        return {nid: self.view_of(nid) for nid in self.servers}

    def view_of(self, nid: str) -> dict:
        """One server's view, as `views` gives it (a frame asks only for the nodes that changed)."""
        v = self.nodes[nid].view(self.now_us)
        v["status"] = self.status[nid]
        v["timers"] = self.timers_of(nid)
        if self.disk is not None:
            v["disk"] = self.disk_busy(nid)
        return v

    def digest(self) -> str:
        """A hash of the whole simulated state at this instant (nodes, network, wire, clock)."""
        state = {
            "t": self.now_us,
            "nodes": {nid: [self.status[nid], self.nodes[nid].digest_state()] for nid in sorted(self.nodes)},
            "net": self.network.view(),
            "flight": [[mid, s, d, m, t0, t1] for mid, (s, d, m, t0, t1) in sorted(self.flight.items())],
            "timers": {nid: sorted((k, tm[0]) for k, tm in v.items())
                       for nid, v in sorted(self._timers.items())},
        }
        if self.manual or self.waiting:  # (absent otherwise: digests of earlier runs hold)
            state["manual"] = [self.manual, list(self.waiting)]
        if self.disk is not None:  # (likewise)
            # Pending writes, every held message (a paused node's too, after its writes ended)
            # and what is durable: worlds that differ only there differ in digest too.
            nids = sorted(set(self._writes) | set(self._outbox))
            state["disk"] = {nid: [[[w[0], w[1]] for w in self._writes.get(nid, ())],
                                   [[s, d, m] for s, d, m in self._outbox.get(nid, ())]]
                             for nid in nids if self._writes.get(nid) or self._outbox.get(nid)}
            state["durable"] = {nid: self._durable[nid] for nid in sorted(self._durable)}
        return hashlib.sha256(orjson.dumps(state, option=orjson.OPT_SORT_KEYS | orjson.OPT_NON_STR_KEYS)).hexdigest()[:16]

    # --- snapshots ----------------------------------------------------------------------------
    def __getstate__(self):
        d = {k: getattr(self, k) for k in self._FIELDS if k not in self._TRANSIENT}
        d["_observers"] = []
        return d

    def __setstate__(self, d):
        for k, v in d.items():
            setattr(self, k, v)
        self._route_checkers()
        self._refresh_wants()

    def snapshot(self) -> bytes:
        """The whole world (checkers included, outside observers not), as bytes."""
        return pickle.dumps(self, protocol=pickle.HIGHEST_PROTOCOL)

    @staticmethod
    def restore(blob: bytes) -> "Simulation":
        return pickle.loads(blob)


__all__ = ["Simulation", "ScenarioError", "ms_to_us"]


if isinstance(_before, types.FunctionType):  # (running as Python: heapq's C is the faster)
    globals().update(_heappush=heapq.heappush, _heappop=heapq.heappop)
