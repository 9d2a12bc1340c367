"""Manual delivery: messages wait on their links; single messages are delivered, dropped or
duplicated and timers fired by ordinary timed actions, so replaying the action list reproduces the
run byte for byte."""

import orjson
import pytest

from engine.scenario import ScenarioError, parse_scenario
from engine.sim import Simulation

from .helpers import leaders, states

BASE = {"nodes": 3, "seed": 2, "duration_ms": 3000}


def live(scn=BASE):
    sim = Simulation(parse_scenario(scn))
    recs: list[dict] = []
    sim.subscribe(lambda r: recs.append(r))
    return sim, recs


def test_waiting_messages_are_not_handled_until_delivered():
    sim, recs = live()
    sim.act({"do": "manual", "on": True})
    sim.act({"do": "fire", "node": "n1", "timer": "election"})
    sim.run_until(100)
    votes = [r for r in recs if r["type"] == "send" and r["msg"]["kind"] == "RequestVote"]
    assert sorted(sim.waiting) == [r["id"] for r in votes]  # both arrived, neither handled
    assert not [r for r in recs if r["type"] == "deliver"]
    assert sim.roles()["n1"] == "candidate"
    sim.act({"do": "deliver", "id": votes[0]["id"]})
    sim.run_until(101)
    assert [r["id"] for r in recs if r["type"] == "deliver"] == [votes[0]["id"]]
    assert votes[0]["id"] not in sim.waiting
    reply = next(r for r in recs if r["type"] == "send" and r["msg"]["kind"] == "RequestVoteResponse")
    sim.run_until(150)
    assert reply["id"] in sim.waiting  # the answer waits too
    sim.act({"do": "deliver", "id": reply["id"]})
    sim.run_until(151)
    assert sim.roles()["n1"] == "leader"


def test_drop_duplicate_and_switching_off():
    sim, recs = live()
    sim.act({"do": "manual", "on": True})
    sim.act({"do": "fire", "node": "n2", "timer": "election"})
    sim.run_until(100)
    a, b = sorted(sim.waiting)
    sim.act({"do": "drop", "id": a})
    sim.act({"do": "duplicate", "id": b})
    sim.run_until(101)
    assert {"type": "drop", "t": 100.001, "id": a, "why": "user"} in recs
    copy = max(sim.waiting)
    assert sorted(sim.waiting) == [b, copy] and sim.flight[copy][2] == sim.flight[b][2]
    sim.act({"do": "manual", "on": False})
    sim.run_until(102)
    assert not sim.waiting
    assert [r["id"] for r in recs if r["type"] == "deliver"] == [b, copy]
    sim.run_until(3000)
    assert leaders(recs) and not sim.violations


def test_firing_a_timer_is_an_election_timeout_now():
    sim, recs = live()
    sim.run_until(50)
    sim.act({"do": "fire", "node": "n3", "timer": "election"})
    sim.run_until(51)
    assert (states(recs, "n3")[-1]["role"], states(recs, "n3")[-1]["t"]) == ("candidate", 50.001)


@pytest.mark.parametrize("bad, needle", [
    ({"do": "deliver", "id": 99}, "action.id: message 99 is not waiting (waiting: none)"),
    ({"do": "drop", "id": 0}, "action.id: Input should be greater than or equal to 1"),
    ({"do": "duplicate"}, "action.id: Field required"),
    ({"do": "fire", "node": "n2", "timer": "heartbeat"}, "action.timer: n2 has no timer 'heartbeat' set (set: election)"),
    ({"do": "fire", "node": "n7", "timer": "election"}, "action.node: unknown node 'n7'"),
    ({"do": "fire", "node": "n1"}, "action.timer: Field required"),
    ({"do": "manual"}, "action.on: Field required"),
    ({"do": "manual", "on": "maybe"}, "action.on"),
])
def test_bad_ids_and_timers_are_refused_naming_the_field(bad, needle):
    sim, _ = live()
    sim.run_until(10)
    with pytest.raises(ScenarioError) as e:
        sim.act(bad)
    assert needle in str(e.value)
    assert sim.actions == []


def test_a_crashed_node_has_no_timer_to_fire():
    sim, _ = live()
    sim.act({"do": "crash", "node": "n1"})
    sim.run_until(10)
    with pytest.raises(ScenarioError, match="action.node: n1 is down"):
        sim.act({"do": "fire", "node": "n1", "timer": "election"})


def test_replaying_the_actions_reproduces_the_run_byte_for_byte():
    sim, recs = live({**BASE, "workload": {"clients": 2, "rate_per_s": 20, "keys": 2}})
    sim.run_until(400)
    sim.act({"do": "manual", "on": True})
    for t in range(420, 1400, 37):
        sim.run_until(t)
        waiting = sorted(sim.waiting)
        if waiting:
            mid = waiting[t % len(waiting)]
            sim.act({"do": ("deliver", "drop", "duplicate", "deliver")[t % 4], "id": mid})
        if t % 5 == 0:
            sim.act({"do": "fire", "node": "n2", "timer": next(iter(sim.timers_of("n2")))})
    sim.run_until(1500)
    sim.act({"do": "manual", "on": False})
    sim.run_until(3000)
    kinds = {a["do"] for a in sim.actions}
    assert {"manual", "deliver", "drop", "duplicate", "fire"} <= kinds
    again, recs2 = live({**BASE, "workload": {"clients": 2, "rate_per_s": 20, "keys": 2},
                         "actions": sim.actions})
    again.run_until(3000)
    assert b"\n".join(map(orjson.dumps, recs2)) == b"\n".join(map(orjson.dumps, recs))
    assert again.digest() == sim.digest()
    restored = Simulation.restore(sim.snapshot())
    assert restored.digest() == sim.digest()


def test_in_a_scenario_an_action_on_no_waiting_message_does_nothing():
    scn = {**BASE, "actions": [{"at": 5, "do": "deliver", "id": 3}, {"at": 6, "do": "drop", "id": 4},
                               {"at": 7, "do": "fire", "node": "n1", "timer": "nope"}]}
    a, ra = live(scn)
    b, rb = live(BASE)
    a.run_until(1000)
    b.run_until(1000)
    assert a.digest() == b.digest()
    assert [r for r in ra if r["type"] != "fault"] == rb
