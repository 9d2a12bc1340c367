"""The Paxos checkers have teeth: fed a record stream that breaks their invariant, each names it;
fed a legal one, none speaks. Records are written by hand, as a trace file would carry them."""

from engine.protocols import Topology, get_protocol
from engine.protocols.paxos.checkers import make_checkers
from engine.protocols.paxos.config import PaxosConfig

SERVERS = ["n1", "n2", "n3"]


def feed(records, config=None, phase_1=False):
    """Run the checkers over records; {name: violations} of those that found any. The records of
    acceptors' states alone do not show promises, so "Accept After Promises" runs only when asked
    (`phase_1`)."""
    config = config or PaxosConfig()
    checkers = [c for c in make_checkers(7, Topology.mesh(SERVERS), config)
                if phase_1 or c.name != "Accept After Promises"]
    for i, rec in enumerate(records):
        rec.setdefault("t", float(i))
        for c in checkers:
            if c.record_types is None or rec["type"] in c.record_types:
                c.observe(rec)
    return {c.name: c.violations for c in checkers if c.violations}


def acc(node, slot, ballot, value, promised=None):
    return {"type": "state", "node": node, "role": "acceptor", "promised": promised or ballot,
            "accepted": {str(slot): [ballot, value]}}


def promise_sent(src, dst, ballot):
    return {"type": "send", "from": src, "to": dst, "id": 0,
            "msg": {"kind": "Promise", "ballot": ballot, "slot": 0, "accepted": {}}}


def accept_sent(src, dst, ballot, value="x"):
    return {"type": "send", "from": src, "to": dst, "id": 0,
            "msg": {"kind": "Accept", "ballot": ballot, "slot": 0, "value": value}}


def test_two_values_chosen_in_one_slot():
    """Consensus.tla: Cardinality(chosen) <= 1; chosen = a quorum of acceptors at one ballot."""
    v = feed([acc("n1", 0, [1, "n1"], "x"), acc("n2", 0, [1, "n1"], "x"),
              acc("n2", 0, [2, "n3"], "y"), acc("n3", 0, [2, "n3"], "y")])
    assert list(v) == ["At Most One Chosen"]
    (only,) = v["At Most One Chosen"]
    assert only["nodes"] == ["n3"] and only["seed"] == 7 and only["t"] == 3.0
    assert "x was chosen at ballot 1.n1 and y at 2.n3" in only["detail"]


def test_one_value_chosen_twice_is_fine_and_other_slots_are_separate():
    v = feed([acc("n1", 0, [1, "n1"], "x"), acc("n2", 0, [1, "n1"], "x"),
              acc("n2", 0, [2, "n3"], "x"), acc("n3", 0, [2, "n3"], "x"),
              acc("n1", 1, [2, "n3"], "y"), acc("n3", 1, [2, "n3"], "y")])
    assert v == {}


def test_a_minority_accepting_chooses_nothing():
    v = feed([acc("n1", 0, [1, "n1"], "x"), acc("n2", 0, [2, "n3"], "y")])
    assert v == {}


def test_two_values_in_one_ballot():
    """Voting.tla's OneValuePerBallot."""
    v = feed([acc("n1", 0, [1, "n1"], "x"), acc("n2", 0, [1, "n1"], "y")])
    assert list(v) == ["One Value Per Ballot"]
    assert v["One Value Per Ballot"][0]["nodes"] == ["n1", "n2"]


def test_accepting_below_the_promise():
    """§2.2 P1a."""
    v = feed([{"type": "state", "node": "n2", "role": "acceptor", "promised": [3, "n3"]},
              acc("n2", 0, [1, "n1"], "x", promised=[3, "n3"])])
    assert list(v) == ["Promise Kept"]
    assert "n2 accepted ballot 1.n1 in slot 0 after promising 3.n3" in v["Promise Kept"][0]["detail"]


def test_a_promise_survives_a_crash_in_the_checker_too():
    v = feed([{"type": "state", "node": "n2", "role": "acceptor", "promised": [3, "n3"]},
              {"type": "state", "node": "n2", "role": "down", "promised": [3, "n3"]},
              acc("n2", 0, [2, "n1"], "x", promised=[3, "n3"])])
    assert list(v) == ["Promise Kept"]


def test_learning_what_no_quorum_accepted():
    """§2.3."""
    v = feed([acc("n1", 0, [1, "n1"], "x"),
              {"type": "state", "node": "n3", "role": "learner", "learned": {"0": "x"}}])
    assert list(v) == ["Learned Is Chosen"]
    assert v["Learned Is Chosen"][0]["nodes"] == ["n3"]


def test_learning_in_the_record_that_completes_the_quorum_is_fine():
    """An acceptor that is also a learner accepts and learns in one step: one record."""
    rec = acc("n2", 0, [1, "n1"], "x")
    rec["learned"] = {"0": "x"}
    assert feed([acc("n1", 0, [1, "n1"], "x"), rec]) == {}


def test_accept_sent_without_a_quorum_of_promises():
    """§2.2 Phase 2(a) needs q1 promises: here only n2's."""
    v = feed([promise_sent("n2", "n1", [1, "n1"]), accept_sent("n1", "n2", [1, "n1"]),
              accept_sent("n1", "n3", [1, "n1"]), {"type": "deliver", "id": 9}], phase_1=True)
    assert list(v) == ["Accept After Promises"]
    (only,) = v["Accept After Promises"]
    assert only["nodes"] == ["n1"] and "1 promise(s) (n2); q1 is 2" in only["detail"]


def test_the_proposers_own_promise_counts_from_its_state():
    """Its messages to itself do not cross the network: n1's promise to itself is its `promised`,
    reported in the state record after the sends of the same step."""
    v = feed([promise_sent("n2", "n1", [1, "n1"]), accept_sent("n1", "n2", [1, "n1"]),
              {"type": "state", "node": "n1", "role": ["proposer", "acceptor"],
               "ballot": [1, "n1"], "phase": "accepting", "promised": [1, "n1"]}], phase_1=True)
    assert v == {}


def test_a_self_accept_without_promises_is_seen_in_state():
    v = feed([acc("n1", 0, [1, "n1"], "x", promised=[1, "n1"])], PaxosConfig(q1=3), phase_1=True)
    assert list(v) == ["Accept After Promises"]


def test_promises_from_non_acceptors_do_not_count():
    config = PaxosConfig(roles={"n3": ["learner"]})
    v = feed([promise_sent("n3", "n1", [1, "n1"]), accept_sent("n1", "n2", [1, "n1"]),
              {"type": "deliver", "id": 1}], config, phase_1=True)
    assert list(v) == ["Accept After Promises"]


def test_chosen_uses_the_configured_q2():
    """With q2 = 1 (and q1 = 3), one acceptor chooses: two acceptors with two values is two chosen."""
    v = feed([acc("n1", 0, [1, "n1"], "x"), acc("n2", 0, [2, "n2"], "y")], PaxosConfig(q1=3, q2=1))
    assert "At Most One Chosen" in v


def test_multi_paxos_adds_linearizability():
    names = ["At Most One Chosen", "One Value Per Ballot", "Promise Kept", "Learned Is Chosen",
             "Accept After Promises", "Linearizability"]
    assert [n for n, _ in get_protocol("paxos").invariants] == names
    topology = Topology.mesh(SERVERS)
    assert [c.name for c in make_checkers(7, topology, PaxosConfig(mode="multi"))][1:] == names
    assert "Linearizability" not in [c.name for c in make_checkers(7, topology, PaxosConfig())]
