"""Pause and resume (stop-the-world): what a paused node missed is handled when it resumes, in
the order it arrived, and a timer that fell due meanwhile fires only if it is still due then."""

from .helpers import leaders, run, states

PAUSE_FOLLOWER = {"nodes": 3, "seed": 1, "duration_ms": 6000,
                  "actions": [{"at": 0, "do": "timeout", "node": "n1"},
                              {"at": 300, "do": "pause", "node": "n2"},
                              {"at": 4800, "do": "resume", "node": "n2"}]}


def test_a_resumed_follower_does_not_depose_a_healthy_leader():
    """Figure 2 (followers): convert to candidate only if the election timeout elapsed without
    hearing from the current leader. The held heartbeats are that hearing: they push the timer
    that fell due during the pause back, and it must not fire at the resume."""
    sim, recs = run(PAUSE_FOLLOWER)
    assert [(n, term) for _, n, term in leaders(recs)] == [("n1", 1)]
    assert all(r["term"] == 1 for r in states(recs))
    delivered_at_resume = [r for r in recs if r["type"] == "deliver" and r["t"] == 4800.0]
    assert len(delivered_at_resume) > 50  # the held AppendEntries were handled, in one go
    assert sim.roles() == {"n1": "leader", "n2": "follower", "n3": "follower"}
    assert sim.nodes["n2"].commit_index == sim.nodes["n1"].commit_index


def test_a_timer_that_is_still_due_at_the_resume_fires():
    """With nothing heard during the pause (the leader is partitioned away from n2), the election
    timer that fell due fires as soon as n2 resumes."""
    scn = {**PAUSE_FOLLOWER,
           "actions": [{"at": 0, "do": "timeout", "node": "n1"},
                       {"at": 290, "do": "partition", "groups": [["n2"]]},
                       {"at": 300, "do": "pause", "node": "n2"},
                       {"at": 4800, "do": "resume", "node": "n2"}]}
    _, recs = run(scn)
    n2 = [r for r in states(recs, "n2") if r["t"] >= 4800]
    assert (n2[0]["t"], n2[0]["role"], n2[0]["term"]) == (4800.0, "candidate", 2)


def test_pause_resume_replays_byte_for_byte():
    _, a = run(PAUSE_FOLLOWER)
    _, b = run(PAUSE_FOLLOWER)
    assert a == b
