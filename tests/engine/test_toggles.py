"""PreVote (thesis §9.6), CheckQuorum (thesis §6.2), leadership transfer (thesis §3.10)."""

from .helpers import leaders, load, run, states


def _isolate_then_heal(**config):
    scn = load("clean_election", duration_ms=4000, config=config)
    sim, recs = run(scn, until_ms=1000)
    (_, leader, term), = leaders(recs)
    victim = next(n for n in sim.servers if n != leader)
    sim.act({"do": "partition", "groups": [[victim]]})
    sim.run_until(2500)
    sim.act({"do": "heal"})
    sim.run_until(4000)
    return sim, recs, leader, term, victim


def test_without_prevote_a_rejoining_node_disrupts_the_leader():
    sim, recs, leader, term, victim = _isolate_then_heal()
    assert sim.nodes[victim].current_term > term + 2  # it kept bumping its term while alone
    assert max(r["term"] for r in states(recs)) > term  # and forced the cluster into a new term


def test_prevote_keeps_an_isolated_node_from_inflating_terms():
    sim, recs, leader, term, victim = _isolate_then_heal(pre_vote=True)
    assert max(r["term"] for r in states(recs)) == term
    assert sim.roles()[leader] == "leader"


def test_check_quorum_makes_a_cut_off_leader_step_down():
    scn = load("clean_election", duration_ms=3000, config={"check_quorum": True})
    sim, recs = run(scn, until_ms=1000)
    (_, leader, term), = leaders(recs)
    sim.act({"do": "partition", "groups": [[leader]]})
    sim.run_until(1400)
    assert sim.roles()[leader] == "follower"
    # without CheckQuorum it would still believe it leads
    sim2, recs2 = run(load("clean_election", duration_ms=3000), until_ms=1000)
    sim2.act({"do": "partition", "groups": [[leader]]})
    sim2.run_until(1400)
    assert sim2.roles()[leader] == "leader"


def test_leadership_transfer_hands_over_to_the_target():
    sim, recs = run(load("clean_election", duration_ms=2000), until_ms=1000)
    (_, leader, term), = leaders(recs)
    target = next(n for n in sim.servers if n != leader)
    sim.act({"do": "transfer", "node": leader, "to": target})
    sim.run_until(1100)
    assert sim.roles()[target] == "leader" and sim.nodes[target].current_term == term + 1
    assert sim.roles()[leader] == "follower"
    assert not sim.violations


def test_9_6_prevote_ignores_grants_from_an_earlier_round():
    from engine import rng as rngmod
    from engine.protocols.raft.node import RaftNode
    from engine.protocols.raft.config import RaftConfig

    from .helpers import FakeContext

    n = RaftNode("n1", ["n2", "n3", "n4", "n5"], RaftConfig(pre_vote=True), rngmod.stream(1, "n1"),
                 (5, None, []))
    ctx = FakeContext()
    n.on_timer(ctx, "election")
    assert n.role == "pre-candidate"
    for p in ("n2", "n3"):  # grants for term 1, from a round long ago
        n.on_message(ctx, p, {"kind": "RequestVoteResponse", "term": 1, "granted": True, "pre_vote": True})
    assert n.role == "pre-candidate" and n.current_term == 5
    for p in ("n2", "n3"):
        n.on_message(ctx, p, {"kind": "RequestVoteResponse", "term": 6, "granted": True, "pre_vote": True})
    assert n.role == "candidate" and n.current_term == 6


def test_9_6_prevote_is_refused_by_a_server_that_hears_its_leader():
    # n3 loses n1's heartbeats (one-way cut) but n2 still hears n1: n2 must refuse n3's pre-vote.
    scn = load("clean_election", nodes=3, duration_ms=3000, config={"pre_vote": True})
    sim, recs = run(scn, until_ms=500)
    (_, leader, term), = leaders(recs)
    victim = next(n for n in sim.servers if n != leader)
    sim.act({"do": "cut", "from": leader, "to": victim, "both": False})
    sim.run_until(3000)
    assert sim.roles()[leader] == "leader"
    assert max(r["term"] for r in states(recs)) == term


def test_figure_2_a_refused_higher_term_vote_request_does_not_reset_the_timer():
    from engine import rng as rngmod
    from engine.protocols.raft.node import RaftNode
    from engine.protocols.raft.config import RaftConfig

    from .helpers import FakeContext

    n = RaftNode("n2", ["n1", "n3"], RaftConfig(), rngmod.stream(1, "n2"), (1, None, [[1, None]]))
    ctx = FakeContext(node_id="n2")
    n.on_start(ctx)
    deadline = n.election_deadline_us
    ctx.now_us = 100_000
    n.on_message(ctx, "n3", {"kind": "RequestVote", "term": 2, "candidate": "n3",
                             "last_log_index": 0, "last_log_term": 0})  # stale log: refused
    assert n.current_term == 2 and n.voted_for is None
    assert n.election_deadline_us == deadline
    n.on_message(ctx, "n1", {"kind": "RequestVote", "term": 2, "candidate": "n1",
                             "last_log_index": 1, "last_log_term": 1})  # granted: reset
    assert n.voted_for == "n1" and n.election_deadline_us != deadline
