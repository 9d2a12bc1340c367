"""Each mutation is off by default; for each, a scripted run (messages delivered by hand) where it
breaks safety and a checker names the break, and the same script without it stays safe."""

from typing import get_args

import pytest

from engine.protocols.paxos.config import MUTATIONS, Mutation, PaxosConfig

from .harness import Net


def test_mutations_are_off_by_default_and_named():
    assert PaxosConfig().mutations == ()
    assert set(get_args(Mutation)) == set(MUTATIONS)
    assert all(MUTATIONS[m].endswith(".") for m in MUTATIONS)


def accept_lower_ballot_script(net: Net) -> None:
    """n1 gets promises for 1.n1 from n1, n2 and sends Accept(x); before it arrives, n3 gets n2's
    promise for the higher 1.n3 (n2 has accepted nothing yet) and sends Accept(y). n1's Accept
    reaches n2, then n3's does."""
    net.propose("n1", "x")
    net.drop("Prepare", dst="n3")
    net.deliver("Prepare", dst="n2")
    net.deliver("Promise", src="n2")
    net.drop("Accept", src="n1", dst="n3")
    net.propose("n3", "y")
    net.drop("Prepare", src="n3", dst="n1")
    net.deliver("Prepare", src="n3", dst="n2")
    net.deliver("Promise", src="n2", dst="n3")
    net.deliver("Accept", src="n1", dst="n2")  # 1.n1 < n2's promise 1.n3
    net.deliver("Accept", src="n3", dst="n2")


def test_accept_lower_ballot_is_caught():
    """§2.2 P1a: with the promise kept, n2 refuses 1.n1 and only y is chosen; ignoring it, n2
    accepts both, and x (n1, n2 at 1.n1) and y (n2, n3 at 1.n3) are both chosen."""
    safe = Net(3)
    accept_lower_ballot_script(safe)
    assert safe.chosen() == ["y"] and not safe.violations
    assert safe.find("Nack", src="n2", dst="n1")

    net = Net(3, mutations=["accept_lower_ballot"])
    accept_lower_ballot_script(net)
    assert net.chosen() == ["x", "y"]
    assert {"At Most One Chosen", "Promise Kept"} <= net.broken()
    v = next(v for v in net.violations if v["invariant"] == "Promise Kept")
    assert v["nodes"] == ["n2"] and "1.n1" in v["detail"] and "1.n3" in v["detail"]


def ignore_promised_values_script(net: Net) -> None:
    """x is chosen by n1 and n2 at 1.n1; n3 then runs phase 1 with n2, which reports x."""
    net.propose("n1", "x")
    net.drop("Prepare", dst="n3")
    net.deliver("Prepare", dst="n2")
    net.deliver("Promise", src="n2")
    net.deliver("Accept", src="n1", dst="n2")
    net.drop("Accept", src="n1", dst="n3")
    net.propose("n3", "y")
    net.drop("Prepare", src="n3", dst="n1")
    net.deliver("Prepare", src="n3", dst="n2")
    net.deliver("Promise", src="n2", dst="n3")
    net.deliver("Accept", src="n3", dst="n2")


def test_ignore_promised_values_is_caught():
    """§2.2 P2c: n3 must propose x, reported by n2's promise; proposing y chooses a second value."""
    safe = Net(3)
    ignore_promised_values_script(safe)
    assert safe.chosen() == ["x"] and not safe.violations

    net = Net(3, mutations=["ignore_promised_values"])
    ignore_promised_values_script(net)
    assert net.chosen() == ["x", "y"]
    assert "At Most One Chosen" in net.broken()
    v = next(v for v in net.violations if v["invariant"] == "At Most One Chosen")
    assert "slot 0" in v["detail"] and "x" in v["detail"] and "y" in v["detail"]


def learn_without_majority_script(net: Net) -> None:
    """n1 accepts x itself and tells every learner; its Accepts to n2, n3 are lost. n3 then gets
    y chosen with n2 (neither accepted x)."""
    net.propose("n1", "x")
    net.drop("Prepare", dst="n3")
    net.deliver("Prepare", dst="n2")
    net.deliver("Promise", src="n2")
    net.drop("Accept", src="n1")
    net.deliver_all("Accepted", src="n1")
    net.propose("n3", "y")
    net.drop("Prepare", src="n3", dst="n1")
    net.deliver("Prepare", src="n3", dst="n2")
    net.deliver("Promise", src="n2", dst="n3")
    net.drop("Accept", src="n3", dst="n1")
    net.deliver("Accept", src="n3", dst="n2")
    net.deliver_all("Accepted")


def test_learn_without_majority_is_caught():
    """§2.3: one acceptor's word is not enough; learning from it, every learner learns x, which is
    never chosen: y is."""
    safe = Net(3)
    learn_without_majority_script(safe)
    assert safe.chosen() == ["y"] and not safe.violations
    assert set(safe.learned().values()) == {"y"}

    net = Net(3, mutations=["learn_without_majority"])
    learn_without_majority_script(net)
    assert net.chosen() == ["y"]
    assert net.learned() == {"n1": "x", "n2": "x", "n3": "x"}
    assert "Learned Is Chosen" in net.broken()
    v = next(v for v in net.violations if v["invariant"] == "Learned Is Chosen")
    assert "learned x in slot 0" in v["detail"]


def quorum_minus_one_script(net: Net) -> None:
    """Five acceptors (q2 = 3). n1 runs phase 1 with n2, n3 and gets x accepted by itself and n2
    only; n5 then runs phase 1 with n3, n4 (none accepted x) and gets y accepted by n3, n4, n5."""
    net.propose("n1", "x")
    net.drop("Prepare", dst="n4")
    net.drop("Prepare", dst="n5")
    net.deliver_all("Prepare", src="n1")
    net.deliver_all("Promise", dst="n1")
    net.drop("Accept", src="n1", dst="n3")
    net.drop("Accept", src="n1", dst="n4")
    net.drop("Accept", src="n1", dst="n5")
    net.deliver("Accept", src="n1", dst="n2")
    net.deliver_all("Accepted")
    net.propose("n5", "y")
    net.drop("Prepare", src="n5", dst="n1")
    net.drop("Prepare", src="n5", dst="n2")
    net.deliver_all("Prepare", src="n5")
    net.deliver_all("Promise", dst="n5")
    net.drop("Accept", src="n5", dst="n1")
    net.drop("Accept", src="n5", dst="n2")
    net.deliver_all("Accept", src="n5")
    net.deliver_all("Accepted")


def test_quorum_minus_one_is_caught():
    """Phase 2 needs q2 acceptors; counting q2 - 1, every learner takes x as chosen though only two
    of five accepted it, and y is chosen after."""
    safe = Net(5)
    quorum_minus_one_script(safe)
    assert safe.chosen() == ["y"] and not safe.violations
    assert set(safe.learned().values()) == {"y"}

    net = Net(5, mutations=["quorum_minus_one"])
    quorum_minus_one_script(net)
    assert net.chosen() == ["y"]
    assert set(net.learned().values()) == {"x"}
    assert "Learned Is Chosen" in net.broken()


@pytest.mark.parametrize("mutation", ["accept_lower_ballot", "ignore_promised_values"])
def test_a_rule_skipped_harms_only_when_proposers_compete(mutation):
    """Without a second proposer these two mutations change nothing (the lessons need both
    pictures); the learning mutations are caught even alone: a learner learns before a quorum
    accepted."""
    net = Net(3, mutations=[mutation])
    net.propose("n1", "x")
    net.settle()
    assert net.chosen() == ["x"] and not net.violations


@pytest.mark.parametrize("mutation", ["learn_without_majority", "quorum_minus_one"])
def test_learning_early_is_caught_even_without_competition(mutation):
    net = Net(3, mutations=[mutation])
    net.propose("n1", "x")
    net.settle()
    assert net.chosen() == ["x"] and net.broken() == {"Learned Is Chosen"}
