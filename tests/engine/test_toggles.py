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
