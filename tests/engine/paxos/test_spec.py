"""Paxos's registry entry: the strict config with errors naming `config.<field>` (checks against the
nodes included), the workload and actions each mode takes, `propose` routed to its proposer, the
trace header's config, words for every message kind and state field, JSON views."""

import io

import orjson
import pytest

from engine.protocols import get_protocol
from engine.protocols.paxos import make_server
from engine.protocols.paxos.config import PaxosConfig
from engine.protocols.paxos.words import MESSAGE_WORDS, STATE_WORDS
from engine.scenario import ScenarioError, parse_scenario
from engine.sim import Simulation
from engine.trace import TraceWriter, read_trace

from ..helpers import run


def paxos(config=None, **changes) -> dict:
    return {"protocol": "paxos", "nodes": 3, "seed": 4, "duration_ms": 500,
            "config": config or {}, **changes}


@pytest.mark.parametrize("config,message", [
    ({"modes": "basic"}, "config.modes: unknown field"),
    ({"mode": "fast"}, "config.mode"),
    ({"mutations": ["skip_phase_1"]}, "config.mutations"),
    ({"q1": 0}, "config.q1"),
    ({"q1": "2"}, "config.q1"),
    ({"backoff": "yes"}, "config.backoff"),
    ({"proposals": {"n1": True}}, "config.proposals"),
    ({"proposals": {"n1": 1.5}}, "config.proposals"),
    ({"mode": "multi", "roles": {"n1": ["acceptor"]}}, "config: roles: every Multi-Paxos server"),
    ({"mode": "multi", "proposals": {"n1": "x"}}, "config: proposals: Multi-Paxos values"),
    ({"roles": {"n1": []}}, "config.roles"),
    ({"roles": {"n1": ["leader"]}}, "config.roles.n1"),
    ({"election_timeout_ms_min": 400}, "election_timeout_ms_min must not exceed"),
    # against the nodes
    ({"roles": {"n9": ["acceptor"]}}, "config.roles.n9: unknown node"),
    ({"proposals": {"n9": "x"}}, "config.proposals.n9: unknown node"),
    ({"roles": {"n1": ["acceptor"]}, "proposals": {"n1": "x"}}, "config.proposals.n1: n1 is not a proposer"),
    ({"roles": {n: ["acceptor"] for n in ("n1", "n2", "n3")}}, "config.roles: no node plays proposer"),
    ({"q2": 4}, "config.q2: 4 is not between 1 and the number of voters (3)"),
    ({"roles": {"n3": ["proposer", "learner"]}, "q1": 3}, "config.q1: 3 is not between 1 and the number of voters (2)"),
])
def test_the_config_is_strict_and_names_the_field(config, message):
    with pytest.raises(ScenarioError) as e:
        parse_scenario(paxos(config))
    assert message in str(e.value)


def test_basic_paxos_refuses_the_key_value_workload_naming_the_field():
    with pytest.raises(ScenarioError, match=r"^workload: basic Paxos takes no workload"):
        parse_scenario(paxos(workload={"kind": "kv"}))
    parse_scenario(paxos({"mode": "multi"}, workload={"kind": "kv"}))


@pytest.mark.parametrize("config,action,message", [
    ({"mode": "multi"}, {"do": "propose", "node": "n1", "value": 1}, "actions[0].do: propose is for basic"),
    ({}, {"do": "request", "node": "n1", "op": "read"}, "actions[0].do: request is for Multi-Paxos"),
    ({"roles": {"n2": ["acceptor"]}}, {"do": "propose", "node": "n2", "value": 1}, "actions[0].node: n2 is not a proposer"),
    ({}, {"do": "propose", "node": "n2", "value": "x" * 40}, "actions[0].value"),
    ({}, {"do": "propose", "node": "n2", "value": [1]}, "actions[0].value"),
    ({}, {"do": "propose", "node": "n9", "value": 1}, "actions[0].node: unknown node 'n9'"),
])
def test_actions_fit_the_mode_and_roles(config, action, message):
    with pytest.raises(ScenarioError) as e:
        parse_scenario(paxos(config, actions=[action]))
    assert message in str(e.value)


def test_a_propose_action_chooses_its_value():
    sim, _ = run(paxos(actions=[{"at": 50, "do": "propose", "node": "n3", "value": "z"}]))
    assert all(sim.nodes[n].learned == {0: "z"} for n in sim.servers)
    with pytest.raises(ScenarioError, match="action.node: n3 is not a proposer"):
        Simulation(parse_scenario(paxos({"roles": {"n3": ["acceptor"]}}))).act(
            {"do": "propose", "node": "n3", "value": 1})


def test_roles_are_kept_in_a_fixed_order_and_quorums_count_acceptors():
    cfg = PaxosConfig(roles={"n1": ["learner", "proposer"], "n4": ["proposer"]})
    sc = parse_scenario(paxos(cfg.model_dump(mode="json"), nodes=4))
    assert cfg.roles_of("n1") == ("proposer", "learner")
    assert make_server("n2", sc.layout, sc.config, None).roles == ("proposer", "acceptor", "learner")
    assert cfg.members(sc.node_ids, "acceptor") == ["n2", "n3"]


@pytest.mark.parametrize("config,nodes,expect", [
    ({}, 3, {"mode": "basic", "q1": 2, "q2": 2}),
    ({"mode": "multi"}, 5, {"mode": "multi", "q1": 3, "q2": 3}),
    ({"q1": 4, "q2": 2}, 5, {"mode": "basic", "q1": 4, "q2": 2}),
    ({"roles": {"n1": ["proposer"]}}, 3,
     {"mode": "basic", "q1": 2, "q2": 2,
      "roles": {"n1": ["proposer"], "n2": ["proposer", "acceptor", "learner"],
                "n3": ["proposer", "acceptor", "learner"]}}),
])
def test_the_trace_header_says_mode_quorums_and_roles(config, nodes, expect):
    sc = parse_scenario(paxos(config, nodes=nodes))
    buf = io.BytesIO()
    TraceWriter(buf, sc)
    head, _ = read_trace(buf.getvalue().splitlines())
    assert {k: head["config"].get(k) for k in expect} == expect
    assert ("roles" in head["config"] and head["config"]["roles"] != {}) == ("roles" in expect)


LESSONS = {
    "basic": paxos({"proposals": {"n1": "x", "n2": "y"}}, duration_ms=3000,
                   nemesis={"interval_ms": 40, "heal_ms": 600}),
    "multi": paxos({"mode": "multi"}, duration_ms=3000, seed=2,
                   workload={"kind": "kv", "clients": 2, "rate_per_s": 20, "keys": 2},
                   nemesis={"interval_ms": 300, "heal_ms": 2500}),
}


@pytest.mark.parametrize("mode", sorted(LESSONS))
def test_every_message_kind_and_state_field_is_described(mode):
    spec = get_protocol("paxos")
    sim = Simulation(parse_scenario(LESSONS[mode]), checkers=False)
    recs: list[dict] = []
    sim.subscribe(recs.append)
    sim.run()
    kinds = {r["msg"]["kind"] for r in recs if r["type"] == "send"}
    assert kinds <= set(MESSAGE_WORDS)
    expected = {"Prepare", "Promise", "Accept", "Accepted"} | (
        {"Heartbeat", "ClientRequest", "ClientReply"} if mode == "multi" else set())
    assert expected <= kinds
    fields = {k for r in recs if r["type"] == "state" for k in r} - {"type", "t", "node"}
    assert fields == set(STATE_WORDS)
    for r in recs:
        if r["type"] == "send":
            assert spec.words.message(r["msg"]).startswith(r["msg"]["kind"] + " ")
    for v in sim.views().values():
        orjson.dumps(v)
        assert v["kind"] == "paxos" and v["mode"] == mode
