"""The scenario envelope: one shape for every protocol, and Raft's first shape converted on load
(link defaults in `config`, a workload without `kind`), so old scenario files, share links and
exported traces keep working and run exactly as before."""

import io

import orjson
import pytest

from engine.faults import FAULT_ACTIONS
from engine.protocols import get_protocol, known_protocols
from engine.scenario import ScenarioError, action_set, parse_scenario
from engine.sim import Simulation
from engine.trace import TraceWriter, check_records, read_trace, scenario_from_header

OLD = {"protocol": "raft", "nodes": 3, "seed": 9, "duration_ms": 3000,
       "config": {"latency_ms_min": 5, "latency_ms_max": 40, "loss": 0.05, "duplicate": 0.02,
                  "heartbeat_ms": 40},
       "workload": {"clients": 2, "rate_per_s": 30, "keys": 2},
       "actions": [{"at": 500, "do": "timeout", "node": "n2"},
                   {"at": 900, "do": "request", "node": "n1", "op": "write", "key": "k1", "value": 7}]}
NEW = {"protocol": "raft", "nodes": 3, "seed": 9, "duration_ms": 3000,
       "config": {"heartbeat_ms": 40},
       "network": {"latency_ms_min": 5, "latency_ms_max": 40, "loss": 0.05, "duplicate": 0.02},
       "workload": {"kind": "kv", "clients": 2, "rate_per_s": 30, "keys": 2},
       "actions": OLD["actions"]}


def _records(sc) -> bytes:
    sim = Simulation(sc)
    out = []
    sim.subscribe(lambda r: out.append(orjson.dumps(r)))
    sim.run()
    return b"\n".join(out)


def test_the_first_shape_is_converted_on_load():
    old, new = parse_scenario(OLD), parse_scenario(NEW)
    assert old == new
    assert old.network.loss == 0.05 and not hasattr(old.config, "loss")
    assert old.workload.kind == "kv"
    assert old.to_dict()["network"] == {"latency_ms_min": 5.0, "latency_ms_max": 40.0,
                                        "loss": 0.05, "duplicate": 0.02}


def test_both_shapes_run_byte_for_byte_alike():
    a, b = _records(parse_scenario(OLD)), _records(parse_scenario(NEW))
    assert len(a) > 10_000 and a == b


def test_a_trace_exported_before_the_envelope_replays_and_checks():
    buf = io.BytesIO()
    sc = parse_scenario(NEW)
    sim = Simulation(sc)
    sim.subscribe(TraceWriter(buf, sc))
    sim.run()
    lines = buf.getvalue().splitlines()
    head = orjson.loads(lines[0])
    head["scenario"] = OLD  # what a trace written before the envelope carries
    head["config"] = OLD["config"]
    lines[0] = orjson.dumps(head)
    head2, records = read_trace(lines)
    assert scenario_from_header(head2) == sc
    summary = check_records(head2, records)
    assert summary["violations"] == [] and summary["linearizable"] is True


def test_round_trip_through_to_dict():
    sc = parse_scenario({**NEW, "nemesis": {"interval_ms": 300, "heal_ms": 2000},
                         "actions": [{"at": 1, "do": "partition", "groups": [["n1"], ["n2"]]},
                                     {"at": 2, "do": "transfer", "node": "n1", "to": "n3"},
                                     {"at": 3, "do": "set_link", "from": "n1", "to": "n2", "loss": 0.5}]})
    again = parse_scenario(sc.to_dict())
    assert again == sc and again.to_dict() == sc.to_dict()
    assert parse_scenario(orjson.dumps(sc.to_dict())) == sc


def test_with_changes_a_field_and_keeps_the_rest():
    sc = parse_scenario(NEW)
    other = sc.with_(nodes=5, seed=2)
    assert other.node_ids == ["n1", "n2", "n3", "n4", "n5"] and other.seed == 2
    assert other.network == sc.network and other.config == sc.config


@pytest.mark.parametrize("bad, needle", [
    ({"protocol": "pbft"}, "protocol: unknown protocol 'pbft' (known: "),
    ({"protocol": 3}, "protocol: unknown protocol 3"),
    ({"protocol": "chubby", "nodes": 4}, "nodes: a Chubby cell has 3 or 5 replicas"),
    ({"protocol": "chubby", "config": {"mutations": ["herd_watch"]}}, "config.mutations"),
    ({"protocol": "chubby", "actions": [{"at": 1, "do": "acquire", "node": "n1"}]},
     "actions[0].node: n1 is not a client process"),
    ({"config": {"heartbeat_ms": 0}}, "config.heartbeat_ms: Input should be greater than 0"),
    ({"config": {"latency_ms_min": 50}}, "config: latency_ms_min must not exceed latency_ms_max"),
    ({"config": "fast"}, "config: Input should be a valid dictionary"),
    ({"network": {"jitter": 1}}, "network.jitter: unknown field"),
    ({"workload": {"kind": "nope"}}, "workload.kind: raft takes workloads of kind 'kv', not 'nope'"),
    ({"workload": {"clients": 2, "rate": 3}}, "workload.rate: unknown field"),
    ({"actions": [{"do": "crash", "node": "n1"}, {"do": "crash", "node": "n1"},
                  {"do": "crash", "node": "n9"}]},
     "actions[2].node: unknown node 'n9' (nodes are n1..n5)"),
    ({"actions": [{"do": "transfer", "node": "n1"}]}, "actions[0].to: Field required"),
    ({"actions": [{"do": "timeout", "node": "n1", "to": "n2"}]}, "actions[0].to: unknown field"),
])
def test_errors_name_the_field(bad, needle):
    with pytest.raises(ScenarioError) as e:
        parse_scenario({"nodes": 5, **bad})
    assert needle in str(e.value)


def test_generic_faults_are_every_protocols_and_protocol_actions_its_own():
    for name in known_protocols():
        spec = get_protocol(name)
        tags = action_set(spec).tags
        assert tags[:5] == ["crash", "restart", "pause", "resume", "partition"]
        assert len(tags) == len(set(tags))
        assert len(FAULT_ACTIONS) + len(spec.actions) <= len(tags)
    assert action_set(get_protocol("raft")).tags[-5:] == ["request", "transfer", "timeout", "heartbeat",
                                                          "lag"]
