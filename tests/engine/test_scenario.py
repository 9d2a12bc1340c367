"""Scenario and action validation: bad input is rejected with a message naming the field."""

import pytest

from engine.scenario import ScenarioError, parse_action, parse_scenario

NODES = ["n1", "n2", "n3"]


@pytest.mark.parametrize("bad, field", [
    ({"nodes": 0}, "nodes"),
    ({"nodes": "five"}, "nodes"),
    ({"protocol": "pbft"}, "protocol"),
    ({"seed": -1}, "seed"),
    ({"colour": "red"}, "colour"),
    ({"config": {"heartbeat_ms": -5}}, "config.heartbeat_ms"),
    ({"config": {"loss": 1.5}}, "config.loss"),  # the first shape: link defaults in config
    ({"network": {"loss": 1.5}}, "network.loss"),
    ({"network": {"latency_ms_min": 20}}, "network: latency_ms_min must not exceed"),
    ({"config": {"loss": 0.1}, "network": {"loss": 0.2}}, "config.loss: given in network too"),
    ({"topology": {"servers": 3}}, "topology: raft runs a full mesh"),
    ({"workload": {"kind": "open_loop"}}, "workload.kind: raft takes workloads of kind 'kv'"),
    ({"workload": {"kind": "kv", "keys": 0}}, "workload.keys"),
    ({"config": {"election_timeout_ms_min": 400}}, "election_timeout_ms_min"),
    ({"config": {"mutations": ["skip_everything"]}}, "skip_everything"),
    ({"config": {"electon_timeout_ms_min": 400}}, "config.electon_timeout_ms_min"),
    ({"workload": {"clients": -1}}, "workload.clients"),
    ({"nemesis": {"faults": ["meteor"]}}, "nemesis.faults"),
    ({"actions": [{"at": 5, "do": "crash", "node": "n9"}]}, "actions[0].node"),
    ({"actions": [{"at": 5, "do": "explode", "node": "n1"}]}, "explode"),
    ({"actions": [{"at": -5, "do": "crash", "node": "n1"}]}, "actions[0].at"),
    ({"actions": [{"do": "partition", "groups": [["n1"], ["n1", "n2"]]}]}, "actions[0].groups[1]"),
    ({"actions": [{"do": "cut", "from": "n1", "to": "n1"}]}, "actions[0].to"),
    ({"actions": [{"do": "request", "node": "n1", "op": "cas", "value": 3}]}, "cas"),
])
def test_bad_scenarios_name_the_field(bad, field):
    with pytest.raises(ScenarioError) as e:
        parse_scenario({"nodes": 5, **bad})
    assert field in str(e.value)


def test_not_json_and_not_an_object():
    with pytest.raises(ScenarioError, match="not valid JSON"):
        parse_scenario("{nope")
    with pytest.raises(ScenarioError, match="JSON object"):
        parse_scenario("[1, 2]")


def test_defaults_match_the_paper_and_raftscope():
    s = parse_scenario({})
    c = s.config
    assert s.protocol == "raft"
    assert (c.election_timeout_ms_min, c.election_timeout_ms_max, c.heartbeat_ms) == (150, 300, 50)
    assert (s.network.latency_ms_min, s.network.latency_ms_max) == (10, 15)
    assert s.node_ids == ["n1", "n2", "n3", "n4", "n5"]


def test_actions_round_trip_through_to_dict():
    s = parse_scenario({"actions": [{"at": 1, "do": "cut", "from": "n1", "to": "n2", "both": False},
                                    {"at": 2, "do": "set_link", "from": "*", "to": "*", "loss": 0.1}]})
    again = parse_scenario(s.to_dict())
    assert again == s
    assert s.to_dict()["actions"][0] == {"at": 1.0, "do": "cut", "from": "n1", "to": "n2", "both": False}


@pytest.mark.parametrize("bad, needle", [
    ("crash n1", "expected a JSON object"),
    ({"node": "n1"}, "action.do: missing"),
    ({"do": "crash"}, "action.node"),
    ({"do": "crash", "node": "n4"}, "unknown node 'n4'"),
    ({"do": "set_link", "from": "*", "to": "n2", "loss": 0.1}, "action.from"),
    ({"do": "set_link", "from": "n1", "to": "n2", "latency_ms": [20, 10]}, "latency_ms"),
    ({"do": "transfer", "node": "n1", "to": "n1"}, "action.to"),
])
def test_bad_actions_name_the_field(bad, needle):
    with pytest.raises(ScenarioError) as e:
        parse_action(bad, NODES)
    assert needle in str(e.value)


from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

_json = st.recursive(
    st.none() | st.booleans() | st.integers(-10**20, 10**20) | st.floats(allow_nan=True) | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=12,
)
_keys = st.sampled_from(["protocol", "nodes", "seed", "duration_ms", "config", "workload", "nemesis",
                         "actions", "do", "node", "from", "to", "groups", "at", "value", "op", "both",
                         "network", "topology", "kind", "loss", "id", "timer", "on"])


@settings(max_examples=300, deadline=None)
@given(st.dictionaries(_keys, _json, max_size=5))
def test_any_json_is_a_scenario_or_a_clear_error(data):
    try:
        parse_scenario(data)
    except ScenarioError as e:
        assert str(e)


@settings(max_examples=300, deadline=None)
@given(st.dictionaries(_keys, _json, max_size=5) | _json)
def test_any_json_is_an_action_or_a_clear_error(data):
    try:
        parse_action(data, NODES)
    except ScenarioError as e:
        assert str(e)


@pytest.mark.parametrize("bad, needle", [
    ({"do": "request", "node": "n1", "op": "read", "value": {"a": [[[]]]}}, "a read takes no 'value'"),
    ({"do": "request", "node": "n1", "op": "write", "value": True}, "integer 'value'"),
    ({"do": "request", "node": "n1", "op": "write", "value": 2**64}, "integer 'value'"),
    ({"do": "request", "node": "n1", "op": "write", "key": "k" * 33, "value": 1}, "action.key"),
    ({"do": "request", "node": "n1", "op": "write", "key": "<b>x</b>", "value": 1}, "action.key"),
    ({"do": "partition", "groups": [[]]}, "action.groups"),
    ({"do": "crash", "node": "n1", "at": float("inf")}, "action.at"),
])
def test_request_values_and_keys_are_bounded(bad, needle):
    with pytest.raises(ScenarioError) as e:
        parse_action(bad, NODES)
    assert needle in str(e.value)


def test_an_infinite_action_time_in_a_scenario_is_refused():
    with pytest.raises(ScenarioError, match=r"actions\[0\]\.at"):
        parse_scenario({"actions": [{"at": float("inf"), "do": "crash", "node": "n1"}]})
    with pytest.raises(ScenarioError, match="config.heartbeat_ms"):
        parse_scenario({"config": {"heartbeat_ms": float("nan")}})
