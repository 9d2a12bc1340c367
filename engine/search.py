"""Counterexample search: with a mutation switched on, find a run that breaks an invariant, and
write it down as a scenario of explicit timed actions that `playground simulate` replays.

Two strategies, both protocol-neutral (the mutations come from the protocol's spec, the verdict
from its checkers' violation records) and deterministic given their inputs and a budget counted
in runs or states (a wall-clock budget is the caller's: `stop()` is asked between runs or states,
and a search that never stops early explores exactly the same runs or states every time):

random (`random_search`)
    Seeds `first_seed`, `first_seed + 1`, ... with the random nemesis (the scenario's, or a
    default one); each run stops at its first violation. The nemesis' faults (the `fault` records
    `"by": "nemesis"`) become ordinary timed actions, the nemesis goes, and the run is replayed to
    check that the same invariant breaks; then the faults are minimised (each left out in turn,
    kept out if the violation still shows), a handful of replays.

explore (`explore`)
    A systematic search of delivery orders and timer firings in the style of DSLabs' model
    checker. The world runs with manual delivery on and zero-latency links (both explicit actions
    at 0 ms), so nothing happens unless chosen. The choices at a state (`choices`) are: deliver
    one waiting message, fire one topology node's set timer, advance (let time run to the next
    thing due by itself: a message sent before 0 ms, a client's timer), crash a running node or
    restart a crashed one (at most `max_crashes` crashes on a path). Each choice is an action
    1 µs after the last, so time hardly moves and timers fire only when chosen. First
    breadth-first over states, pruned by `state_digest` (the nodes' digest states and statuses,
    the multiset of messages on the wire, the timers set, the network: message ids and timer
    deadlines left out, so interleavings that commute meet again), up to `bfs_states` states;
    then, as DSLabs' random DFS does, seeded random walks from the initial state, each with its
    own swarm bias (`_Swarm`), for the rest of `max_states`. A walk's path to the first
    violation is shrunk by delta debugging (`_shrink`); the path becomes the scenario's actions.

`Found.scenario` is a complete scenario (the mutation on, no nemesis, explicit actions, the
duration cut at the violation) and `reproduces` replays one.
"""

from __future__ import annotations

import hashlib
import io
import pickle
import random
from dataclasses import dataclass, field
from typing import Callable

import orjson

from . import rng as rngmod
from .protocols import get_protocol
from .scenario import Scenario, parse_scenario
from .sim import Simulation

Stop = Callable[[], bool]
_OPTS = orjson.OPT_SORT_KEYS | orjson.OPT_NON_STR_KEYS


def _dumps(obj) -> bytes:
    return orjson.dumps(obj, option=_OPTS)


STEP_US = 1  # explore: each choice is an action this long after the previous one
MAX_DEPTH = 400  # explore: choices per path
SHRINK_STATES = 200_000  # explore: states replayed to shrink a walk's counterexample
CHUNK_MS = 25.0  # random: the run is checked for violations this often (then cut at the first)
DEFAULT_NEMESIS = {"interval_ms": 300, "heal_ms": 86_400_000}


class SearchError(ValueError):
    """Bad search input (an unknown mutation, a scenario that cannot be searched)."""


@dataclass
class Found:
    invariant: str
    t: float
    violation: dict
    scenario: dict  # the counterexample, ready for `playground simulate`


@dataclass
class Result:
    strategy: str
    mutation: str | None
    found: Found | None
    explored: int  # runs (random) or states (explore)
    unit: str  # "runs" or "states"
    stats: dict = field(default_factory=dict)

    def as_dict(self) -> dict:
        f = self.found
        return {"found": f is not None, "strategy": self.strategy, "mutation": self.mutation,
                "invariant": f.invariant if f else None, "t": f.t if f else None,
                "explored": self.explored, "unit": self.unit,
                "violation": f.violation if f else None, **self.stats,
                "scenario": f.scenario if f else None}


# --- the scenario searched -----------------------------------------------------------------------

def with_mutation(scn: Scenario, mutation: str | None) -> Scenario:
    """The scenario with `mutation` switched on (validated by the protocol's config model)."""
    if mutation is None:
        return scn
    known = get_protocol(scn.protocol).mutations
    if mutation not in known:
        raise SearchError(f"mutation: {scn.protocol} has no mutation {mutation!r} "
                          f"(known: {', '.join(sorted(known)) or 'none'})")
    data = scn.to_dict()
    cfg = dict(data.get("config") or {})
    cfg["mutations"] = sorted(set(cfg.get("mutations") or ()) | {mutation})
    data["config"] = cfg
    return parse_scenario(data)


def first_violation(sim: Simulation) -> dict | None:
    """The earliest violation the world's checkers have reported so far (None if none)."""
    best = None
    for c in sim.checkers:
        for v in c.violations:
            if best is None or (v["t"], v["invariant"]) < (best["t"], best["invariant"]):
                best = v
    return best


def _violated(sim: Simulation) -> bool:
    for c in sim.checkers:
        if c.violations:
            return True
    return False


def counterexample(scn: Scenario, actions: list[dict], t_ms: float, title: str) -> dict:
    """A complete scenario: `scn` without its nemesis, with `actions` (sorted by time, stable),
    run to `t_ms`."""
    data = scn.to_dict()
    data.pop("nemesis", None)
    data.pop("suggest", None)
    data["actions"] = sorted(actions, key=lambda a: a["at"])
    data["duration_ms"] = t_ms
    data["title"] = title
    data["notes"] = (f"Found by `playground search` ({title}). Replays the violation with "
                     f"explicit actions and no nemesis.")
    return parse_scenario(data).to_dict()


def reproduces(scenario: dict, invariant: str) -> dict | None:
    """Replay `scenario` to its end; the first violation of `invariant`, or None."""
    sim = Simulation(parse_scenario(scenario))
    sim.run()
    vs = [v for v in sim.violations if v["invariant"] == invariant]
    return vs[0] if vs else None


# --- random: seeds with the nemesis --------------------------------------------------------------

def random_search(scn: Scenario, mutation: str | None = None, *, runs: int = 100,
                  first_seed: int = 0, minimise: bool = True, stop: Stop | None = None) -> Result:
    """Run seeds `first_seed`.. with the nemesis until one breaks an invariant (at most `runs`)."""
    scn = with_mutation(scn, mutation)
    data = scn.to_dict()
    if scn.nemesis is None:
        data["nemesis"] = dict(DEFAULT_NEMESIS, heal_ms=scn.duration_ms)
    base = parse_scenario(data)
    explored = 0
    for i in range(runs):
        if stop is not None and stop():
            break
        seed = first_seed + i
        explored += 1
        run_scn = base.with_(seed=seed)
        sim = Simulation(run_scn)
        faults: list[dict] = []

        def keep(rec, faults=faults):
            if rec["type"] == "fault" and rec.get("by") == "nemesis":
                a = {k: v for k, v in rec.items() if k not in ("type", "t", "by")}
                a["at"] = rec["t"]
                faults.append(a)

        sim.subscribe(keep, messages=False)
        v = None
        t = 0.0
        while t < run_scn.duration_ms:
            t = min(t + CHUNK_MS, run_scn.duration_ms)
            sim.run_until(t)
            v = first_violation(sim)
            if v is not None:
                break
        if v is None:
            continue
        found = _fix_random(run_scn, list(run_scn.to_dict().get("actions", ())), faults, v,
                            minimise, seed)
        if found is not None:
            return Result("random", mutation, found, explored, "runs", {"seed": seed})
    return Result("random", mutation, None, explored, "runs")


def _fix_random(scn: Scenario, own: list[dict], faults: list[dict], v: dict, minimise: bool,
                seed: int) -> Found | None:
    """The nemesis' faults as actions, replayed; minimised by leaving each out in turn, again
    until none can go. A run that breaks sooner than the horizon ends where it breaks (the
    counterexample's duration is its violation's moment)."""
    inv = v["invariant"]
    faults = [a for a in faults if a["at"] <= v["t"]]
    title = f"counterexample: {inv} (random search, seed {seed})"

    def attempt(fs, t_ms):
        fs = [a for a in fs if a["at"] <= t_ms]
        cand = counterexample(scn, own + fs, t_ms, title)
        got = reproduces(cand, inv)
        return (fs, cand, got) if got is not None else None

    def trimmed(best):
        fs, cand, got = best
        if got["t"] < cand["duration_ms"]:
            return attempt(fs, got["t"]) or best
        return best

    best = attempt(faults, v["t"])
    if best is None:
        return None
    best = trimmed(best)
    changed = minimise
    while changed:
        changed = False
        i = len(best[0]) - 1
        while i >= 0:
            fs = best[0]
            if i < len(fs):
                got = attempt(fs[:i] + fs[i + 1:], best[1]["duration_ms"])
                if got is not None:
                    best, changed = trimmed(got), True
            i -= 1
    _, cand, got = best
    return Found(inv, got["t"], got, cand)


# --- explore: delivery orders and timer firings --------------------------------------------------

def explore_start(scn: Scenario) -> Scenario:
    """The scenario the exploration runs: no nemesis, manual delivery on and every link at zero
    latency from 0 ms (explicit actions, so the counterexample carries them)."""
    data = scn.to_dict()
    data.pop("nemesis", None)
    if data.get("storage"):
        # The exploration's choices are deliveries, timer firings and crashes; a write finishing
        # is not one of them (nor part of the state it prunes by), so it would miss orders.
        raise SearchError("storage: the explore strategy does not model storage latency; use "
                          "--strategy random, or drop the scenario's storage")
    data["actions"] = [{"at": 0, "do": "manual", "on": True},
                       {"at": 0, "do": "set_link", "from": "*", "to": "*",
                        "latency_ms": [0, 0]}] + list(data.get("actions", ()))
    return parse_scenario(data)


def state_digest(sim: Simulation) -> bytes:
    """What the exploration prunes by: the world digest's parts, less message ids and times and
    timer deadlines (so that interleavings that commute reach the same digest)."""
    waiting = sim.waiting
    wire = sorted(_dumps([s, d, m, mid in waiting]) for mid, (s, d, m, _t0, _t1) in sim.flight.items())
    state = [
        [[nid, sim.status[nid], sim.nodes[nid].digest_state()] for nid in sorted(sim.nodes)],
        [[nid, sorted(v)] for nid, v in sorted(sim._timers.items()) if v],
        sim.network.view(),
    ]
    h = hashlib.blake2b(_dumps(state), digest_size=16)
    h.update(b"\n".join(wire))
    return h.digest()


def _next_due_us(sim: Simulation) -> int | None:
    """When something next happens by itself: a message on the wire arrives or a set timer of a
    running node comes due (None if nothing will)."""
    due = [arr for mid, (_s, _d, _m, _t0, arr) in sim.flight.items() if mid not in sim.waiting]
    for nid, timers in sim._timers.items():
        if timers and sim.status.get(nid) == "up":
            due.extend(tm[0] for tm in timers.values())
    return min(due) if due else None


def choices(sim: Simulation, crashes_left: int) -> list[dict]:
    """The actions possible now (without `at`), in a fixed order: deliveries (by message id),
    firing a topology node's timer (by node, then timer name), letting time run to the next thing
    that happens by itself (`advance`: a message on the wire arrives, a timer comes due; the only
    way a workload client's timer fires), crashes and restarts (by node)."""
    out: list[dict] = [{"do": "deliver", "id": mid} for mid in sim.waiting]
    for nid in sim.servers:
        timers = sim._timers.get(nid)
        if timers and sim.status[nid] == "up":
            for name in sorted(timers):
                out.append({"do": "fire", "node": nid, "timer": name})
    if _next_due_us(sim) is not None:
        out.append({"do": "advance"})
    for nid in sim.servers:
        st = sim.status[nid]
        if st == "up" and crashes_left > 0:
            out.append({"do": "crash", "node": nid})
        elif st == "down":
            out.append({"do": "restart", "node": nid})
    return out


def apply_choice(sim: Simulation, choice: dict) -> dict | None:
    """Take one choice in `sim`: schedule it as an action `STEP_US` after now and run to it (an
    advance runs to the next thing due instead, and records no action). Returns the action as
    recorded (with `at`)."""
    if choice["do"] == "advance":
        nxt = _next_due_us(sim)
        sim.run_until(max(nxt, sim.now_us + STEP_US) / 1000)
        return None
    t_ms = (sim.now_us + STEP_US) / 1000
    rec = sim.schedule(dict(choice, at=t_ms))
    sim.run_until(t_ms)
    return rec


def explore(scn: Scenario, mutation: str | None = None, *, max_states: int = 100_000,
            bfs_states: int | None = None, max_depth: int = MAX_DEPTH, max_crashes: int = 2,
            seed: int = 0, shrink_states: int = SHRINK_STATES, stop: Stop | None = None) -> Result:
    """Breadth-first over states (pruned by `state_digest`) up to `bfs_states` states (default:
    a tenth of `max_states`), then seeded random walks of up to `max_depth` choices until
    `max_states` states in all; a walk's counterexample is then shrunk (`_shrink`, at most
    `shrink_states` more states). Deterministic given the arguments (unless `stop` says stop)."""
    scn = with_mutation(scn, mutation)
    start = explore_start(scn)
    sim0 = Simulation(start)
    sim0.run_until(0)
    if bfs_states is None:
        bfs_states = max_states // 10
    bfs_states = min(bfs_states, max_states)
    counts = {"states": 0, "bfs_states": 0, "unique": 0, "walks": 0, "depth": 0,
              "shrink_states": 0}

    found = _bfs(sim0, bfs_states, max_depth, max_crashes, counts, stop)
    if found is None:
        found = _walks(sim0, max_states, max_depth, max_crashes, seed, counts, stop)
        if found is not None:
            found = _shrink(sim0, found, shrink_states, counts, stop)
    result = None
    if found is not None:
        path, v = found
        title = f"counterexample: {v['invariant']} (explored, {len(path)} choices)"
        cand = counterexample(start, list(start.to_dict()["actions"]) + path, v["t"], title)
        got = reproduces(cand, v["invariant"])
        if got is not None:
            result = Found(v["invariant"], got["t"], got, cand)
    return Result("explore", mutation, result, counts["states"], "states",
                  {k: counts[k] for k in ("bfs_states", "unique", "walks", "depth",
                                          "shrink_states")})


def _new_random(state) -> random.Random:
    r = random.Random.__new__(random.Random)
    r.setstate(state)
    return r


def _reduce_random(r: random.Random):
    return _new_random, (r.getstate(),)


class _Forker:
    """Snapshots of one exploration's worlds, cheaper than `Simulation.snapshot`: an RNG is rebuilt
    from its state without first seeding itself from the operating system (which is what
    `random.Random`'s own unpickling does, a quarter of a world's restore)."""

    _table = {random.Random: _reduce_random}

    def dump(self, sim: Simulation) -> bytes:
        buf = io.BytesIO()
        p = pickle.Pickler(buf, pickle.HIGHEST_PROTOCOL)
        p.dispatch_table = self._table
        p.dump(sim)
        return buf.getvalue()

    @staticmethod
    def load(blob: bytes) -> Simulation:
        return pickle.loads(blob)


class _Path:
    """A path as a linked list of recorded actions (children share their parent's)."""

    __slots__ = ("parent", "action", "crashes", "depth")

    def __init__(self, parent, action, crashes, depth):
        self.parent, self.action, self.crashes, self.depth = parent, action, crashes, depth

    def actions(self) -> list[dict]:
        out, p = [], self
        while p is not None:
            if p.action is not None:
                out.append(p.action)
            p = p.parent
        return out[::-1]


def _bfs(sim0: Simulation, budget: int, max_depth: int, max_crashes: int, counts: dict,
         stop: Stop | None):
    if budget <= 0:
        return None
    fork = _Forker()
    seen = {state_digest(sim0)}
    frontier: list[tuple[bytes, _Path]] = [(fork.dump(sim0), _Path(None, None, 0, 0))]
    for depth in range(1, max_depth + 1):
        nxt: list[tuple[bytes, _Path]] = []
        for blob, path in frontier:
            parent = fork.load(blob)
            for choice in choices(parent, max_crashes - path.crashes):
                if counts["states"] >= budget or (stop is not None and stop()):
                    return None
                sim = fork.load(blob)
                rec = apply_choice(sim, choice)
                counts["states"] += 1
                counts["bfs_states"] += 1
                counts["depth"] = max(counts["depth"], depth)
                child = _Path(path, rec, path.crashes + (choice["do"] == "crash"), depth)
                v = first_violation(sim)
                if v is not None:
                    return child.actions(), v
                h = state_digest(sim)
                if h in seen:
                    continue
                seen.add(h)
                counts["unique"] += 1
                nxt.append((fork.dump(sim), child))
        if not nxt:
            return None
        frontier = nxt
    return None


class _Swarm:
    """One random walk's bias (swarm testing, Groce et al. 2012: each walk leaves some choices
    rare, so that runs differ in kind, not only in detail). Drawn from the search's RNG: how often
    a timer is fired or time let run against a delivery, each node's share of the traffic (a slow
    node's messages are rarely delivered: it drifts out of date, as a partitioned one does), each
    node's share of the timer firings, how often a node is crashed or restarted, how often the
    oldest waiting message goes first (a mostly-FIFO network) rather than any, and how deep the
    walk goes (short walks try many beginnings, long ones reach far)."""

    def __init__(self, rnd):
        self.rnd = rnd
        self.fire = rnd.choice((0.02, 0.05, 0.1, 0.2, 0.5, 1.0))
        self.advance = rnd.choice((0.01, 0.05, 0.1, 0.3, 1.0))
        self.crash = rnd.choice((0.0, 0.01, 0.03, 0.1))
        self.restart = rnd.choice((0.02, 0.1, 0.3))
        self.fifo = rnd.choice((0.0, 0.5, 0.9))
        self.depth = rnd.choice((25, 50, 100, 200, 400))  # DSLabs' random DFS: bounded depth
        self.node_w: dict[str, float] = {}
        self.timer_w: dict[str, float] = {}

    def weight_of(self, table: dict, nid: str, slow: float) -> float:
        w = table.get(nid)
        if w is None:
            w = table[nid] = slow if self.rnd.random() < 0.3 else 1.0
        return w

    def pick(self, sim: Simulation, crashes_left: int) -> dict | None:
        """One choice among `choices(sim, crashes_left)`, drawn with this walk's bias (without
        listing them all: the waiting messages pile up on a long walk)."""
        rnd = self.rnd
        waiting = sim.waiting
        timers = [(nid, name) for nid in sim.servers if sim.status[nid] == "up"
                  for name in sorted(sim._timers.get(nid, ()))]
        status = sim.status
        up = [nid for nid in sim.servers if status[nid] == "up"] if crashes_left > 0 else []
        down = [nid for nid in sim.servers if status[nid] == "down"]
        kinds = ("deliver", "fire", "advance", "crash", "restart")
        weights = (1.0 if waiting else 0.0, self.fire if timers else 0.0, self.advance,
                   self.crash if up else 0.0, self.restart if down else 0.0)
        kind = rnd.choices(kinds, weights)[0]
        if kind == "deliver":
            ids = list(waiting)
            flight = sim.flight
            node_w = self.node_w
            mid = ids[0]
            for attempt in range(8):
                mid = ids[0] if self.fifo and rnd.random() < self.fifo else rnd.choice(ids)
                src, dst = flight[mid][0], flight[mid][1]
                if rnd.random() < self.weight_of(node_w, src, 0.05) * self.weight_of(node_w, dst, 0.05):
                    break
            return {"do": "deliver", "id": mid}
        if kind == "fire":
            ws = [self.weight_of(self.timer_w, nid, 0.1) for nid, _ in timers]
            nid, name = rnd.choices(timers, ws)[0]
            return {"do": "fire", "node": nid, "timer": name}
        if kind == "crash":
            return {"do": "crash", "node": rnd.choice(up)}
        if kind == "restart":
            return {"do": "restart", "node": rnd.choice(down)}
        return {"do": "advance"} if _next_due_us(sim) is not None else None


def _walks(sim0: Simulation, budget: int, max_depth: int, max_crashes: int, seed: int,
           counts: dict, stop: Stop | None):
    """Random walks from the start, each with its own `_Swarm` bias, until the state budget."""
    rnd = rngmod.stream(seed, "search")
    fork = _Forker()
    blob = fork.dump(sim0)
    while counts["states"] < budget:
        if stop is not None and stop():
            return None
        counts["walks"] += 1
        swarm = _Swarm(rnd)
        sim = fork.load(blob)
        path: list[dict] = []
        moves: list[tuple] = []
        crashes = 0
        for depth in range(1, min(max_depth, swarm.depth) + 1):
            if counts["states"] >= budget:
                return None
            choice = swarm.pick(sim, max_crashes - crashes)
            if choice is None:
                break
            moves.append(_move(sim, choice))
            rec = apply_choice(sim, choice)
            crashes += choice["do"] == "crash"
            if rec is not None:
                path.append(rec)
            counts["states"] += 1
            counts["depth"] = max(counts["depth"], depth)
            if _violated(sim):
                return path, first_violation(sim), moves
    return None


# --- shrinking a walk's path ---------------------------------------------------------------------

def _move(sim: Simulation, choice: dict) -> tuple:
    """A choice as it can be made again in another world: a delivery by what the message is
    (from, to, content), since message ids shift as soon as an earlier choice is left out."""
    if choice["do"] == "deliver":
        src, dst, msg, _t0, _t1 = sim.flight[choice["id"]]
        return ("deliver", src, dst, _dumps(msg))
    return (choice["do"], choice.get("node"), choice.get("timer"))


def _choice(sim: Simulation, move: tuple) -> dict | None:
    """The choice `move` is in `sim` now, or None if it is not possible here."""
    do = move[0]
    if do == "deliver":
        flight = sim.flight
        for mid in sim.waiting:
            src, dst, msg, _t0, _t1 = flight[mid]
            if src == move[1] and dst == move[2] and _dumps(msg) == move[3]:
                return {"do": "deliver", "id": mid}
        return None
    if do == "advance":
        return {"do": "advance"} if _next_due_us(sim) is not None else None
    nid = move[1]
    st = sim.status.get(nid)
    if do == "fire":
        ok = st == "up" and move[2] in sim._timers.get(nid, ())
        return {"do": "fire", "node": nid, "timer": move[2]} if ok else None
    if (do == "crash" and st == "up") or (do == "restart" and st == "down"):
        return {"do": do, "node": nid}
    return None


def _replay_moves(fork, blob: bytes, moves: list[tuple], invariant: str, counts: dict):
    """Make `moves` from the start (skipping those not possible); at the first violation of
    `invariant`: (the recorded actions, the moves made, the violation). None if it never breaks."""
    sim = fork.load(blob)
    path, made = [], []
    for m in moves:
        c = _choice(sim, m)
        if c is None:
            continue
        made.append(m)
        rec = apply_choice(sim, c)
        counts["shrink_states"] += 1
        if rec is not None:
            path.append(rec)
        for chk in sim.checkers:
            for v in chk.violations:
                if v["invariant"] == invariant:
                    return path, made, v
    return None


def _shrink(sim0: Simulation, found, budget: int, counts: dict, stop: Stop | None):
    """Delta debugging (Zeller's ddmin, simplified to removals): leave out chunks of the path,
    halving the chunk when none can go, keeping a shorter path whenever it still breaks the same
    invariant; within `budget` replayed states."""
    path, v, moves = found
    fork = _Forker()
    blob = fork.dump(sim0)
    inv = v["invariant"]
    n = 2
    while len(moves) >= 2:
        chunk = -(-len(moves) // n)
        shorter = None
        for i in range(0, len(moves), chunk):
            if counts["shrink_states"] + len(moves) > budget or (stop is not None and stop()):
                return path, v
            got = _replay_moves(fork, blob, moves[:i] + moves[i + chunk:], inv, counts)
            if got is not None:
                shorter = got
                break
        if shorter is not None:
            path, moves, v = shorter
            n = max(n - 1, 2)
        elif chunk == 1:
            break
        else:
            n = min(2 * n, len(moves))
    return path, v
