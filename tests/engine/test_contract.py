"""The contract every protocol in the registry keeps (and `relay`, a toy balancer unlike Raft,
kept here to show the seam holds for other shapes): determinism, snapshot/restore and replay,
every record told in words, every view serialisable, every action and bad action validated with
the field named, scenarios round-tripping. A new protocol gets these tests by registering.

Actions are built from their node fields (`node`, `to`, ...); an action that needs more to be
valid gets its extra fields in EXAMPLES. A protocol with modes (Paxos: basic, multi) runs the
contract once per mode, as listed in MODES: the scenario's changes, and the action tags that mode
refuses (named in the error).
"""

from __future__ import annotations

import io
from typing import get_args

import orjson
import pytest

from engine.faults import FAULT_ACTIONS
from engine.manual import MANUAL_ACTIONS
from engine.protocols import REGISTRY, get_protocol, known_protocols
from engine.run import run_scenario
from engine.scenario import ScenarioError, parse_action, parse_scenario
from engine.sim import KERNEL_RECORDS, Simulation
from engine.trace import TraceWriter
from engine.transcript import SILENT, line, transcript

TOYS = {"relay": "tests.engine.relay"}
EXAMPLES = {  # extra fields some actions need to be valid (node fields are filled in)
    "partition": lambda ids: {"groups": [[ids[0]]]},
    "set_link": lambda ids: {"loss": 0.2},
    "request": lambda ids: {"op": "read", "key": "k1"},
    "manual": lambda ids: {"on": True},
    "deliver": lambda ids: {"id": 1},
    "drop": lambda ids: {"id": 1},
    "duplicate": lambda ids: {"id": 1},
    "fire": lambda ids: {"timer": "t"},
    "propose": lambda ids: {"value": 7},
    "slow": lambda ids: {"node": ids[-1], "factor": 0.5},
    "algorithm": lambda ids: {"node": ids[0], "algorithm": "least_connections"},  # lb: ids[0] is lb1
    "acquire": lambda ids: {"node": "c1"},  # zk, chubby: the lock actions name a client process
    "release": lambda ids: {"node": "c1"},
    "write": lambda ids: {"node": "c1", "value": "v"},
    "read": lambda ids: {"node": "c1", "path": "/lock"},
    "close": lambda ids: {"node": "c1"},  # zk, chubby: a client closes its session
    # zk: the client API (the node /data does not exist at first: refused with NoNode, then made)
    "get": lambda ids: {"node": "c1", "path": "/data", "watch": True},
    "create": lambda ids: {"node": "c1", "path": "/data", "data": "x"},
    "set": lambda ids: {"node": "c1", "path": "/data", "data": "y", "version": 0},
    "get_children": lambda ids: {"node": "c1", "path": "/data", "watch": True, "sync": True},
    "exists": lambda ids: {"node": "c1", "path": "/data", "watch": True},
    "delete": lambda ids: {"node": "c1", "path": "/data", "version": 1},
}
MODES = {  # protocol -> {mode: (scenario changes, action tags refused in that mode)}
    "paxos": {"basic": ({"config": {"proposals": {"n1": "x", "n2": "y"}}, "workload": None,
                         "actions": [{"at": 110 * i, "do": "timeout", "node": f"n{i % 3 + 1}"}
                                     for i in range(1, 26)]},  # rounds after the decision too
                        ("request",)),
              "multi": ({"config": {"mode": "multi"}}, ("propose",))},
    # Chubby at the paper's timings (12 s leases: nothing expires in a 3 s run) and at a lesson's,
    # where the nemesis makes sessions lapse and locks wait out lock-delay.
    "chubby": {"paper": ({}, ()),
               "lesson": ({"config": {"master_lease_ms": 300.0, "session_lease_ms": 400.0,
                                      "grace_period_ms": 800.0, "lock_delay_ms": 300.0}}, ())},
}


class Case:
    """A protocol (in one of its modes): `spec`, the scenario `changes`, the `refused` tags."""

    def __init__(self, spec, changes: dict, refused: tuple[str, ...]):
        self.spec, self.changes, self.refused = spec, changes, refused
        self.name, self.words, self.liveness = spec.name, spec.words, spec.liveness
        self.actions, self.workloads = spec.actions, spec.workloads


def _cases() -> list:
    out = []
    for name in known_protocols() + sorted(TOYS):
        for mode, (changes, refused) in MODES.get(name, {None: ({}, ())}).items():
            out.append(pytest.param((name, changes, refused), id=name if mode is None else f"{name}-{mode}"))
    return out


@pytest.fixture(params=_cases())
def spec(request, monkeypatch):
    name, changes, refused = request.param
    if name in TOYS:
        monkeypatch.setitem(REGISTRY, name, TOYS[name])
    return Case(get_protocol(name), changes, refused)


def scenario(case, **changes) -> dict:
    d = {"protocol": case.name, "nodes": 3, "seed": 5, "duration_ms": 3000,
         "nemesis": {"interval_ms": 200, "heal_ms": 2200}}
    if case.workloads:
        d["workload"] = {"kind": case.workloads[0]}
    d.update(case.changes)
    d.update(changes)
    return {k: v for k, v in d.items() if v is not None}


def tags(cls) -> tuple[str, ...]:
    return get_args(cls.model_fields["do"].annotation)


def examples(spec, ids: list[str], manual: bool = True) -> list[dict]:
    """One valid action of every kind the protocol accepts (with `manual`, the message-level
    ones too, which only apply to a message or timer that exists); its `node`, `from` and `to`
    fields name the first nodes, in order."""
    return [a for a in all_examples(spec, ids, manual) if a["do"] not in spec.refused]


def all_examples(spec, ids: list[str], manual: bool = True) -> list[dict]:
    out = []
    for cls in FAULT_ACTIONS + (MANUAL_ACTIONS if manual else ()) + tuple(spec.actions):
        names = [info.alias or f for f, info in cls.model_fields.items()]
        for tag in tags(cls):
            a = {"do": tag}
            for i, f in enumerate(f for f in names if f in ("node", "from", "to")):
                a[f] = ids[i]
            a.update(EXAMPLES.get(tag, lambda ids: {})(ids))
            out.append(a)
    return out


def run_bytes(sc) -> bytes:
    buf = io.BytesIO()
    sim = Simulation(sc)
    sim.subscribe(TraceWriter(buf, sc))
    sim.run()
    return buf.getvalue()


def test_the_same_seed_gives_a_byte_identical_trace(spec):
    sc = parse_scenario(scenario(spec))
    a, b = run_bytes(sc), run_bytes(sc)
    assert a == b and a.count(b"\n") > 200
    assert run_bytes(sc.with_(seed=6)) != a


def test_snapshot_restore_and_replay_reach_the_same_digest(spec):
    sc = parse_scenario(scenario(spec))
    ids = sc.node_ids
    live = Simulation(sc.with_(nemesis=None))
    live.run_until(400)
    for i, a in enumerate(examples(spec, ids, manual=False)):
        live.act(a)
        live.run_until(400 + 50 * (i + 1))
    copy = Simulation.restore(live.snapshot())
    assert copy.digest() == live.digest()
    live.run_until(2500)
    copy.run_until(2500)
    assert copy.digest() == live.digest() and copy.events == live.events
    replayed = Simulation(sc.with_(nemesis=None, actions=live.actions))
    replayed.run_until(2500)
    assert replayed.digest() == live.digest()


def test_every_record_is_told_in_words(spec):
    sim = Simulation(parse_scenario(scenario(spec)))
    recs: list[dict] = []
    sim.subscribe(recs.append)
    sim.run()
    seen = {r["type"] for r in recs}
    assert seen <= set(sim.record_types)
    for typ in seen - set(KERNEL_RECORDS):
        assert typ in spec.words.records, f"{spec.name}: no words for {typ!r} records"
    for r in recs:
        if r["type"] not in SILENT:
            assert line(r, spec.spec), f"{spec.name}: {r['type']} record told as nothing: {r}"
    assert transcript(recs, spec.spec).count("\n") >= len([r for r in recs if r["type"] not in SILENT])


def test_every_view_is_json(spec):
    sim = Simulation(parse_scenario(scenario(spec)))
    for t in (0, 700, 1500, 2200, 3000):
        sim.run_until(t)
        orjson.dumps(sim.views())
        for node in sim.nodes.values():
            orjson.dumps(node.view(sim.now_us))
            orjson.dumps(node.digest_state())
        assert set(sim.roles()) == set(sim.servers)


def test_every_action_is_valid_and_bad_ones_name_the_field(spec):
    ids = parse_scenario(scenario(spec)).node_ids
    for a in examples(spec, ids):
        parse_action(a, ids, protocol=spec.spec)
        bad = [({**a, "colour": 1}, "action.colour: unknown field"),
               ({**a, "at": -1}, "action.at"),
               ({"do": a["do"] + "_"}, "unknown action")]
        for f in ("node", "from", "to"):
            if f in a:
                bad.append(({**a, f: "zz9"}, f"action.{f}: unknown node 'zz9'"))
                bad.append(({k: v for k, v in a.items() if k != f}, f))  # missing: named
        for data, needle in bad:
            with pytest.raises(ScenarioError) as e:
                parse_action(data, ids, protocol=spec.spec)
            assert needle in str(e.value), (data, str(e.value))
    with pytest.raises(ScenarioError, match="action.do: missing"):
        parse_action({"node": ids[0]}, ids, protocol=spec.spec)


def test_actions_a_mode_refuses_name_the_field(spec):
    """A click or a scenario action of another mode is refused, naming `do`."""
    sc = parse_scenario(scenario(spec))
    refused = [a for a in all_examples(spec, sc.node_ids) if a["do"] in spec.refused]
    assert len(refused) == len(spec.refused)
    for a in refused:
        sim = Simulation(sc)
        with pytest.raises(ScenarioError, match=r"^action\.do: "):
            sim.act(a)
        with pytest.raises(ScenarioError, match=r"actions\[0\]\.do: "):
            parse_scenario(scenario(spec, actions=[a]))


def test_a_scenario_round_trips(spec):
    ids = parse_scenario(scenario(spec)).node_ids
    acts = [{**a, "at": 10 * i} for i, a in enumerate(examples(spec, ids))]
    sc = parse_scenario(scenario(spec, actions=acts))
    assert parse_scenario(sc.to_dict()) == sc
    assert parse_scenario(orjson.dumps(sc.to_dict())).to_dict() == sc.to_dict()
    assert len(sc.actions) == len(acts)


def test_the_spec_describes_itself(spec):
    case, spec = spec, spec.spec
    assert spec.name in known_protocols() + sorted(TOYS)
    assert spec.invariants and all(len(s) > 10 for _, s in spec.invariants)
    assert all(isinstance(s, str) and s for s in spec.mutations.values())
    sc = parse_scenario(scenario(case))
    assert set(spec.node_factories) >= {k for _, k in sc.layout.nodes}
    assert spec.config_model() == sc.config.__class__()


def test_a_headless_run_summarises_any_protocol(spec):
    """`playground simulate`'s summary: no protocol needs a linearizability checker, and the
    liveness measure is the protocol's own."""
    s = run_scenario(parse_scenario(scenario(spec)))
    assert s["violations"] == [] and s["protocol"] == spec.name
    assert set(s["roles"]) == set(parse_scenario(scenario(spec)).node_ids)
    if spec.liveness is not None:
        assert s[spec.liveness.key] is not None


def test_manual_delivery_replays_byte_for_byte(spec):
    """Messages wait; single ones are delivered, dropped, duplicated; timers fired; all as
    recorded actions, which replay to the same records."""
    sc = parse_scenario(scenario(spec, nemesis=None))
    sim = Simulation(sc)
    recs: list[bytes] = []
    sim.subscribe(lambda r: recs.append(orjson.dumps(r)))
    sim.run_until(300)
    sim.act({"do": "manual", "on": True})
    moves = 0
    for t in range(310, 1500, 23):
        sim.run_until(t)
        if sim.waiting:
            mid = sorted(sim.waiting)[t % len(sim.waiting)]
            sim.act({"do": ("deliver", "drop", "duplicate")[t % 3], "id": mid})
            moves += 1
        up = [n for n in sim.servers if sim.status[n] == "up" and sim.timers_of(n)]
        if up and t % 4 == 0:
            n = up[t % len(up)]
            sim.act({"do": "fire", "node": n, "timer": sorted(sim.timers_of(n))[0]})
    sim.act({"do": "manual", "on": False})
    sim.run_until(2500)
    assert moves > 20 and not sim.waiting
    again = Simulation(sc.with_(actions=sim.actions))
    recs2: list[bytes] = []
    again.subscribe(lambda r: recs2.append(orjson.dumps(r)))
    again.run_until(2500)
    assert recs2 == recs and again.digest() == sim.digest()
