"""engine/quorum.py: majority and flexible quorums (Howard et al., 2016), vote counting."""

import pytest

from engine.kvstore import KVStore
from engine.quorum import VoteResult, committed_index, flexible, majority, vote_result


def test_majority():
    assert [majority(n) for n in range(1, 8)] == [1, 2, 2, 3, 3, 4, 4]


def test_flexible_defaults_to_majorities_and_says_when_quorums_can_miss():
    assert flexible(5).as_dict() == {"n": 5, "q1": 3, "q2": 3, "unsafe": False}
    assert flexible(5, q1=4, q2=2).intersect  # Flexible Paxos §3: 4 + 2 > 5
    assert flexible(4, q1=3, q2=2).intersect
    assert flexible(3, q1=1, q2=2).unsafe  # 1 + 2 <= 3: a phase-1 quorum can miss a phase-2 one
    assert flexible(5, q1=2, q2=3).unsafe


@pytest.mark.parametrize("q1,q2,field", [(0, None, "q1"), (None, 6, "q2"), (6, 1, "q1")])
def test_flexible_refuses_sizes_out_of_range(q1, q2, field):
    with pytest.raises(ValueError, match=field):
        flexible(5, q1, q2)


def test_vote_result():
    voters = ["n1", "n2", "n3"]
    assert vote_result(voters, ["n1"], [], 2) is VoteResult.PENDING
    assert vote_result(voters, ["n1", "n3"], ["n2"], 2) is VoteResult.WON
    assert vote_result(voters, ["n1"], ["n2", "n3"], 2) is VoteResult.LOST
    assert vote_result(voters, ["n1", "n9"], [], 2) is VoteResult.PENDING  # n9 does not vote here


def test_committed_index_is_the_quorum_th_largest():
    assert committed_index([5, 3, 9], 2) == 5
    assert committed_index([5, 3, 9, 1, 1], 3) == 3
    assert committed_index([4], 2) == 0


def test_kvstore_executes_a_duplicate_once():
    """Raft §8 sessions, shared by Multi-Paxos: the same (client, serial) is executed once."""
    s = KVStore()
    cas = {"client": "c1", "req": 1, "op": "cas", "key": "k", "value": [None, 2]}
    assert s.execute(cas) == (True, [None, 2])
    assert s.execute(cas) == (True, [None, 2])  # a second cas would fail: 2 != None
    assert s.kv == {"k": 2} and s.answered("c1", 1) == (True, [None, 2])
    assert s.execute({"client": "c2", "req": 1, "op": "read", "key": "k", "value": None}) == (True, 2)
