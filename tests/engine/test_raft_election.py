"""Leader election: extended Raft paper §5.2 and the election restriction of §5.4.1."""

from engine import rng as rngmod
from engine.protocols.raft.node import RaftNode
from engine.protocols.raft.config import RaftConfig

from .helpers import FakeContext, leaders, load, run, states


def node(nid="n1", peers=("n2", "n3"), persistent=None, **cfg):
    return RaftNode(nid, list(peers), RaftConfig(**cfg), rngmod.stream(1, nid), persistent)


def test_5_2_clean_start_elects_one_leader_in_term_1():
    sim, recs = run(load("clean_election", duration_ms=2000))
    ls = leaders(recs)
    assert len(ls) == 1
    t, leader, term = ls[0]
    assert term == 1 and 150 <= t <= 400
    roles = sim.roles()
    assert roles[leader] == "leader"
    assert sorted(r for n, r in roles.items() if n != leader) == ["follower"] * 4
    # heartbeats keep everyone in term 1: nobody else ever became a candidate after the win
    assert not [r for r in states(recs) if r["role"] == "candidate" and r["t"] > t]


def test_5_2_election_timeout_is_redrawn_at_each_reset():
    n = node()
    ctx = FakeContext()
    draws = set()
    for i in range(20):
        ctx.now_us = i * 1000
        n._reset_election_timer(ctx)
        draws.add(ctx.timers["election"] - ctx.now_us)
    assert len(draws) > 15
    assert all(150_000 <= d < 300_000 for d in draws)


def test_5_2_candidate_votes_for_itself_and_asks_everyone():
    n = node(peers=("n2", "n3", "n4", "n5"))
    ctx = FakeContext()
    n.on_timer(ctx, "election")
    assert (n.role, n.current_term, n.voted_for) == ("candidate", 1, "n1")
    asked = sorted(to for to, m in ctx.of_kind("RequestVote"))
    assert asked == ["n2", "n3", "n4", "n5"]


def test_5_2_one_vote_per_term_first_come_first_served():
    n = node("n3", peers=("n1", "n2"))
    ctx = FakeContext(node_id="n3")
    rv = {"kind": "RequestVote", "term": 1, "last_log_index": 0, "last_log_term": 0}
    n.on_message(ctx, "n1", {**rv, "candidate": "n1"})
    n.on_message(ctx, "n2", {**rv, "candidate": "n2"})
    votes = [(to, m["granted"]) for to, m in ctx.of_kind("RequestVoteResponse")]
    assert votes == [("n1", True), ("n2", False)]
    assert n.voted_for == "n1"


def test_5_4_1_voter_denies_a_candidate_with_a_less_up_to_date_log():
    # our last entry is from term 2; the candidate's last is from term 1 though its log is longer
    n = node("n3", peers=("n1", "n2"), persistent=(2, None, [[1, None], [2, None]]))
    ctx = FakeContext(node_id="n3")
    n.on_message(ctx, "n1", {"kind": "RequestVote", "term": 3, "candidate": "n1",
                             "last_log_index": 5, "last_log_term": 1})
    (_, reply), = ctx.of_kind("RequestVoteResponse")
    assert reply["granted"] is False and n.current_term == 3 and n.voted_for is None
    # same last term, shorter log: denied; equal: granted
    n.on_message(ctx, "n2", {"kind": "RequestVote", "term": 4, "candidate": "n2",
                             "last_log_index": 1, "last_log_term": 2})
    assert ctx.of_kind("RequestVoteResponse")[-1][1]["granted"] is False
    n.on_message(ctx, "n2", {"kind": "RequestVote", "term": 5, "candidate": "n2",
                             "last_log_index": 2, "last_log_term": 2})
    assert ctx.of_kind("RequestVoteResponse")[-1][1]["granted"] is True


def test_5_1_stale_term_requests_are_rejected_with_the_current_term():
    n = node("n2", peers=("n1", "n3"), persistent=(5, None, []))
    ctx = FakeContext(node_id="n2")
    n.on_message(ctx, "n1", {"kind": "AppendEntries", "term": 3, "leader": "n1", "prev_log_index": 0,
                             "prev_log_term": 0, "entries": [[3, None]], "leader_commit": 0})
    (_, reply), = ctx.of_kind("AppendEntriesResponse")
    assert reply == {"kind": "AppendEntriesResponse", "term": 5, "success": False, "match_index": 0}
    assert n.log == []


def test_5_2_split_vote_is_resolved_by_a_later_term():
    sim, recs = run(load("split_vote", duration_ms=3000))
    first_round = [r for r in states(recs) if r["t"] < 150]
    candidates = {r["node"] for r in first_round if r["role"] == "candidate" and r["term"] == 1}
    assert candidates == {"n1", "n2", "n3"}
    assert not [r for r in states(recs) if r["role"] == "leader" and r["term"] == 1]
    ls = leaders(recs)
    assert len(ls) == 1 and ls[0][2] == 2
    assert not sim.violations


def test_5_2_crashing_the_leader_elects_a_new_one_with_a_higher_term():
    scn = load("clean_election", duration_ms=3000)
    sim, recs = run(scn, until_ms=1000)
    (_, old, term), = leaders(recs)
    sim.act({"do": "crash", "node": old})
    sim.run_until(3000)
    later = [x for x in leaders(recs) if x[1] != old]
    assert later and later[0][2] > term
    assert later[0][0] - 1000 < 10 * 300  # within ten election timeouts
