"""Single-decree Paxos ("Paxos Made Simple", §2), message by message."""

from engine.protocols.paxos.ballot import as_ballot

from .harness import Net


def test_clean_run_chooses_and_every_learner_learns():
    """§2.2 both phases, §2.3 learning: one proposer, nothing lost."""
    net = Net(3)
    net.propose("n1", "x")
    prepares = net.find("Prepare")
    assert [(s, d) for _, s, d, _ in prepares] == [("n1", "n2"), ("n1", "n3")]  # n1 promised itself
    net.settle()
    assert net.chosen() == ["x"]
    assert net.learned() == {"n1": "x", "n2": "x", "n3": "x"}
    assert net.nodes["n1"].done and net.nodes["n1"].phase == "idle"
    assert not net.violations


def test_phase_2_starts_with_a_phase_1_quorum_only():
    """§2.2 Phase 2(a): "If the proposer receives a response to its prepare requests from a
    majority of acceptors" (5 nodes: its own promise and two more)."""
    net = Net(5)
    net.propose("n1", "x")
    assert not net.find("Promise")  # its own promise did not cross the network
    net.deliver("Prepare", dst="n2")
    net.deliver("Promise", src="n2")
    assert net.nodes["n1"].phase == "preparing" and not net.find("Accept")
    net.deliver("Prepare", dst="n3")
    net.deliver("Promise", src="n3")
    assert net.nodes["n1"].phase == "accepting"
    assert {d for _, _, d, _ in net.find("Accept")} == {"n2", "n3", "n4", "n5"}


def test_promise_reports_the_highest_accepted_proposal():
    """§2.2 Phase 1(b): the promise carries "the highest-numbered proposal (if any) that it has
    accepted"."""
    net = Net(3)
    net.propose("n1", "x")
    net.deliver("Prepare", dst="n2")
    net.deliver("Promise", src="n2")
    net.deliver("Accept", dst="n2")
    net.propose("n3", "y")
    net.deliver("Prepare", src="n3", dst="n2")
    promise = net.find("Promise", src="n2", dst="n3")[0][3]
    assert promise["accepted"] == {"0": [[1, "n1"], "x"]}


def test_second_proposer_adopts_the_value_a_promise_reported():
    """§2.2 P2c: n3's phase-1 quorum {n2, n3} includes n2, which accepted x, so n3 proposes x,
    not its own y: the value chosen with n1 and n2 stays the only one."""
    net = Net(3)
    net.propose("n1", "x")
    net.deliver("Prepare", dst="n2")
    net.deliver("Promise", src="n2")
    net.deliver("Accept", dst="n2")
    assert net.chosen() == ["x"]
    net.drop("Accept", dst="n3")
    net.propose("n3", "y")
    net.deliver("Prepare", src="n3", dst="n2")
    net.deliver("Promise", src="n2", dst="n3")
    accepts = net.find("Accept", src="n3")
    assert accepts and all(m["value"] == "x" for *_, m in accepts)
    net.settle()
    assert net.chosen() == ["x"]
    assert set(net.learned().values()) == {"x"}
    assert not net.violations


def test_nack_names_the_higher_promise_and_the_proposer_jumps_above_it():
    """A rejected prepare is answered with the higher promise, so the next ballot overtakes it."""
    net = Net(3)
    net.propose("n3", "y")  # ballot 1.n3
    net.deliver("Prepare", src="n3", dst="n2")
    net.propose("n1", "x")  # ballot 1.n1 < 1.n3
    assert net.nodes["n1"].ballot == (1, "n1")
    net.deliver("Prepare", src="n1", dst="n2")
    nack = net.find("Nack", src="n2", dst="n1")[0][3]
    assert nack["ballot"] == [1, "n1"] and nack["promised"] == [1, "n3"]
    net.deliver("Nack", dst="n1")
    # back-off is on by default: the retry waits on a timer, then starts above round 1
    assert net.nodes["n1"].phase == "idle" and "backoff" in net.timers["n1"]
    net.fire("n1", "backoff")
    assert net.nodes["n1"].ballot == (2, "n1")


def test_without_backoff_a_nack_retries_at_once():
    net = Net(3, backoff=False)
    net.propose("n3", "y")
    net.deliver("Prepare", src="n3", dst="n2")
    net.propose("n1", "x")
    net.deliver("Prepare", src="n1", dst="n2")
    net.deliver("Nack", dst="n1")
    assert net.nodes["n1"].ballot == (2, "n1") and net.nodes["n1"].phase == "preparing"
    assert "backoff" not in net.timers["n1"]


def test_a_round_that_does_not_finish_retries_after_the_timeout():
    """Messages to both other acceptors are lost: the retry timer starts a new round."""
    net = Net(3, backoff=False)
    net.propose("n1", "x")
    net.drop("Prepare")
    net.fire("n1", "retry")
    assert net.nodes["n1"].ballot == (2, "n1") and len(net.find("Prepare")) == 2


def test_acceptor_state_survives_a_crash_and_learned_values_do_not():
    """§2.5: acceptors keep their promise and accepted proposal on stable storage; the proposer
    keeps its highest round, so a restarted proposer never reuses a ballot."""
    net = Net(3)
    net.propose("n1", "x")
    net.settle()
    net.crash("n2")
    net.restart("n2")
    n2 = net.nodes["n2"]
    assert n2.promised == (1, "n1") and n2.accepted == {0: ((1, "n1"), "x")}
    assert n2.learned == {}
    net.crash("n1")
    net.restart("n1")
    n1 = net.nodes["n1"]
    assert n1.max_round == 1 and n1.learned == {}
    net.propose("n1", "z")  # a new round: above every round n1 used, and it must adopt x
    assert as_ballot(net.find("Prepare", src="n1")[0][3]["ballot"]) == (2, "n1")
    net.settle()
    assert net.chosen() == ["x"] and net.learned()["n1"] == "x"
    assert not net.violations


def test_a_proposer_that_is_not_a_learner_still_hears_its_acceptances():
    """Roles are separate: n1 only proposes, n2 and n3 accept, n3 learns. The Accepted goes to the
    learners and to the proposer of the ballot."""
    net = Net(3, roles={"n1": ["proposer"], "n2": ["acceptor"], "n3": ["acceptor", "learner"]})
    net.propose("n1", "x")
    assert {d for _, _, d, _ in net.find("Prepare")} == {"n2", "n3"}
    net.settle()
    assert net.nodes["n1"].done
    assert net.learned() == {"n3": "x"}
    assert net.chosen() == ["x"] and not net.violations


def test_take_state_reports_only_what_changed():
    net = Net(3)
    net.propose("n1", "x")
    net.settle()
    n2_states = [r for r in net.records if r["type"] == "state" and r["node"] == "n2"]
    assert n2_states[0] == {"type": "state", "t": 0.0, "node": "n2",
                            "role": ["proposer", "acceptor", "learner"], "ballot": None,
                            "phase": "idle", "promised": None}
    with_acc = [r for r in n2_states if "accepted" in r]
    assert len(with_acc) == 1 and with_acc[0]["accepted"] == {"0": [[1, "n1"], "x"]}
    assert [r["learned"] for r in n2_states if "learned" in r] == [{"0": "x"}]
    assert net.nodes["n2"].take_state() is None


def test_view_is_json_and_names_the_roles():
    import orjson

    net = Net(3)
    net.propose("n1", "x")
    net.settle()
    v = net.nodes["n1"].view(0)
    orjson.dumps(v)
    assert v["phase"] == "idle" and v["ballot"] == [1, "n1"] and v["promised"] == [1, "n1"]
    assert v["accepted"] == {"0": [[1, "n1"], "x"]} and v["learned"] == {"0": "x"}
    orjson.dumps(net.nodes["n2"].digest_state())
