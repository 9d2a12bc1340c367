"""Flexible quorums (Howard, Malkhi and Spiegelman, 2016): phase-1 quorums of q1 and phase-2
quorums of q2 acceptors are safe when every q1-set meets every q2-set, i.e. q1 + q2 > n."""

import pytest

from engine.protocols.paxos.config import PaxosConfig, quorum_unsafe

from .harness import Net

SERVERS3 = ["n1", "n2", "n3"]


def test_the_page_can_say_when_quorums_are_unsafe():
    assert not quorum_unsafe(PaxosConfig(), SERVERS3)
    assert quorum_unsafe(PaxosConfig(q1=1, q2=2), SERVERS3)
    assert not quorum_unsafe(PaxosConfig(q1=3, q2=1), SERVERS3)
    assert PaxosConfig(q1=3, q2=1).header(SERVERS3) == {"mode": "basic", "q1": 3, "q2": 1}


def phase_1_with(net: Net, proposer: str, value, other: str, silent: str) -> None:
    """`proposer` runs phase 1 with itself and, if q1 needs it, `other`; `silent` hears nothing.
    Then phase 2 reaches `other` only."""
    net.propose(proposer, value)
    net.drop("Prepare", src=proposer, dst=silent)
    if net.nodes[proposer].phase == "preparing":  # its own promise is not enough
        net.deliver("Prepare", src=proposer, dst=other)
        net.deliver("Promise", src=other, dst=proposer)
    else:
        net.drop("Prepare", src=proposer)
    net.drop("Accept", src=proposer, dst=silent)
    net.deliver("Accept", src=proposer, dst=other)
    net.deliver_all("Accepted")


def two_lone_proposers(net: Net) -> None:
    """n1 with n2, then n3 with n2; n1 and n3 never hear each other."""
    phase_1_with(net, "n1", "x", other="n2", silent="n3")
    phase_1_with(net, "n3", "y", other="n2", silent="n1")


def test_phase_1_quorums_that_miss_phase_2_quorums_choose_two_values():
    """q1 = 1, q2 = 2 of 3 (1 + 2 <= 3): n3's phase-1 quorum {n3} misses the phase-2 quorum
    {n1, n2} that chose x, so it proposes y and {n2, n3} chooses it."""
    net = Net(3, q1=1, q2=2)
    two_lone_proposers(net)
    assert net.chosen() == ["x", "y"]
    assert "At Most One Chosen" in net.broken()


def test_intersecting_quorums_keep_one_value():
    """The same script with majorities: n3's phase 1 must hear n2, which reports x."""
    net = Net(3)
    two_lone_proposers(net)
    assert net.chosen() == ["x"] and not net.violations


@pytest.mark.parametrize("q1,q2", [(3, 1), (2, 2), (1, 3)])
def test_any_intersecting_pair_is_safe_in_a_clean_run(q1, q2):
    """q1 + q2 = 4 > 3: larger phase-1 quorums buy smaller phase-2 ones, and back."""
    net = Net(3, q1=q1, q2=q2)
    net.propose("n1", "x")
    net.settle()
    assert net.chosen() == ["x"] and not net.violations
    assert net.learned() == {"n1": "x", "n2": "x", "n3": "x"}
