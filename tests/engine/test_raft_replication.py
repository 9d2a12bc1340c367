"""Log replication (§5.3), commitment (§5.3, §5.4.2), restarts (Figure 2, persistent state)."""

from engine import rng as rngmod
from engine.protocols.raft.node import RaftNode
from engine.protocols.raft.config import RaftConfig

from .helpers import FakeContext, invariants_broken, leaders, load, run, states


def node(nid="n1", peers=("n2", "n3"), persistent=None, **cfg):
    return RaftNode(nid, list(peers), RaftConfig(**cfg), rngmod.stream(1, nid), persistent)


def ae(term, prev_i, prev_t, entries, commit=0, leader="n1"):
    return {"kind": "AppendEntries", "term": term, "leader": leader, "prev_log_index": prev_i,
            "prev_log_term": prev_t, "entries": entries, "leader_commit": commit}


def test_5_3_consistency_check_rejects_a_gap_with_a_hint():
    f = node("n2", peers=("n1", "n3"), persistent=(1, None, [[1, None]]))
    ctx = FakeContext(node_id="n2")
    f.on_message(ctx, "n1", ae(1, 3, 1, [[1, None]]))
    (_, r), = ctx.of_kind("AppendEntriesResponse")
    assert r["success"] is False and r["conflict_index"] == 2 and r["conflict_term"] is None


def test_5_3_conflicting_suffix_is_replaced_and_the_hint_names_the_term():
    # follower has [1, 2, 2, 2]; leader of term 3 has [1, 3, ...]
    f = node("n2", peers=("n1", "n3"), persistent=(2, None, [[1, None], [2, None], [2, None], [2, None]]))
    ctx = FakeContext(node_id="n2")
    f.on_message(ctx, "n1", ae(3, 4, 3, []))
    r = ctx.of_kind("AppendEntriesResponse")[-1][1]
    assert r["success"] is False and (r["conflict_term"], r["conflict_index"]) == (2, 2)
    f.on_message(ctx, "n1", ae(3, 1, 1, [[3, None], [3, None]], commit=2))
    r = ctx.of_kind("AppendEntriesResponse")[-1][1]
    assert r["success"] is True and r["match_index"] == 3
    assert f.log == [(1, None), (3, None), (3, None)]
    assert f.commit_index == 2


def test_5_3_stale_duplicate_append_does_not_truncate_later_entries():
    f = node("n2", peers=("n1", "n3"), persistent=(1, None, [[1, None], [1, None], [1, None]]))
    ctx = FakeContext(node_id="n2")
    f.on_message(ctx, "n1", ae(1, 0, 0, [[1, None]]))  # an old, re-delivered AppendEntries
    assert len(f.log) == 3


def test_5_3_leader_backs_off_next_index_with_the_conflict_term():
    lead = node("n1", peers=("n2", "n3"), persistent=(3, "n1", [[1, None], [1, None], [3, None]]))
    ctx = FakeContext()
    lead.on_timer(ctx, "election")  # term 4, candidate
    for p in ("n2", "n3"):
        lead.on_message(ctx, p, {"kind": "RequestVoteResponse", "term": 4, "granted": True})
    assert lead.role == "leader" and lead.log[-1] == (4, None)
    # follower n2 holds a term-2 entry at index 3; it rejects and names term 2 starting at index 3
    lead.on_message(ctx, "n2", {"kind": "AppendEntriesResponse", "term": 4, "success": False,
                                "match_index": 0, "conflict_index": 3, "conflict_term": 2})
    to, m = ctx.sent[-1]
    assert to == "n2" and m["prev_log_index"] == 2 and [e[0] for e in m["entries"]] == [3, 4]


def test_5_4_2_leader_commits_only_entries_of_its_own_term_by_counting():
    lead = node("n1", peers=("n2", "n3", "n4", "n5"),
                persistent=(1, "n1", [[1, None], [1, {"client": "c", "req": 1, "op": "write",
                                                     "key": "k", "value": 1}]]))
    ctx = FakeContext()
    lead.on_timer(ctx, "election")
    for p in ("n2", "n3"):
        lead.on_message(ctx, p, {"kind": "RequestVoteResponse", "term": 2, "granted": True})
    assert lead.role == "leader"
    # two followers acknowledge index 2 (a term-1 entry): a majority, but not of this term
    for p in ("n2", "n3"):
        lead.on_message(ctx, p, {"kind": "AppendEntriesResponse", "term": 2, "success": True,
                                 "match_index": 2})
    assert lead.commit_index == 0
    for p in ("n2", "n3"):
        lead.on_message(ctx, p, {"kind": "AppendEntriesResponse", "term": 2, "success": True,
                                 "match_index": 3})
    assert lead.commit_index == 3 and lead.kv == {"k": 1}


def test_figure_8_correct_raft_loses_nothing_committed():
    sim, recs = run(load("figure8"))
    assert not sim.violations
    # n1 never committed index 2 in term 3: its commit stayed at 0 after the restart
    n1_commits = [r["commit"] for r in states(recs, "n1") if r["t"] > 650]
    assert max(n1_commits) < 2
    # n5 won term 4 and index 2 now holds n5's term-2 entry everywhere it reached
    assert (leaders(recs)[-1][1], leaders(recs)[-1][2]) == ("n5", 4)
    assert sim.nodes["n3"].log[1][0] == 2


def test_figure_8_with_commit_previous_term_breaks_state_machine_safety():
    sim, _ = run(load("figure8_bug"))
    broken = invariants_broken(sim)
    assert "State Machine Safety" in broken and "Leader Completeness" in broken
    v = next(v for v in sim.violations if v["invariant"] == "State Machine Safety")
    assert set(v["nodes"]) == {"n1", "n5"} and v["seed"] == 1 and 1100 < v["t"] < 1300


def test_minority_leader_cannot_commit_and_rolls_back():
    sim, recs = run(load("minority_partition", duration_ms=6000))
    n1_states = states(recs, "n1")
    during = [r for r in n1_states if 1000 < r["t"] < 4000]
    # n1 appended the user's write (index 2) as leader of term 1 but never committed it
    assert any(r.get("log", {}).get("append") == [(1, {"client": "user", "req": 1, "op": "write",
                                                        "key": "k1", "value": 1})] for r in during)
    assert max(r["commit"] for r in during) == 1
    after = [r for r in n1_states if r["t"] > 4000]
    assert after[0]["role"] == "follower" and after[0]["term"] == 2
    assert any(r.get("log", {}).get("keep") == 1 for r in after)  # index 2 was overwritten
    assert [e[1] for e in sim.nodes["n1"].log] == [e[1] for e in sim.nodes["n4"].log]
    hist = [(r["op"], r["value"]) for r in recs if r["type"] == "client" and r["client"] == "user"]
    assert ("info", 1) in hist and ("ok", 2) in hist
    assert ("ok", 2) in hist[-1:]  # the final read sees the majority's write
    assert not sim.violations


def test_restart_keeps_term_vote_and_log_and_resets_volatile_state():
    sim, _ = run(load("leader_crash_replication", duration_ms=2400))
    n2 = sim.nodes["n2"]
    before = (n2.current_term, n2.voted_for, list(n2.log))
    assert n2.commit_index > 3 and n2.kv
    sim.act({"do": "crash", "node": "n2"})
    sim.run_until(2401)
    assert sim.status["n2"] == "down"
    sim.act({"do": "restart", "node": "n2"})
    sim.run_until(2402)
    fresh = sim.nodes["n2"]
    assert fresh is not n2
    assert (fresh.current_term, fresh.voted_for, fresh.log) == before
    assert (fresh.commit_index, fresh.last_applied, fresh.kv, fresh.role) == (0, 0, {}, "follower")
    sim.run_until(3000)  # it learns the commit index again and rebuilds its state machine
    assert sim.nodes["n2"].kv == sim.nodes[leaders_now(sim)].kv


def leaders_now(sim):
    return next(n for n, r in sim.roles().items() if r == "leader")


def test_followers_catch_up_after_restart():
    sim, recs = run(load("leader_crash_replication", duration_ms=9000))
    lead = leaders_now(sim)
    logs = {n: [tuple(map(str, e)) for e in sim.nodes[n].log] for n in sim.servers}
    # n5 (down 1-4 s) and n1 (down 2.1-5 s) hold everything the leader has committed; an entry
    # appended in the last few milliseconds may still be on its way.
    c = sim.nodes[lead].commit_index
    assert c > 40
    assert all(logs[n][:c] == logs[lead][:c] for n in sim.servers)
    assert all(sim.nodes[n].commit_index >= c - 1 for n in sim.servers)
    assert not sim.violations


def test_fig2_heartbeats_only_in_idle_periods():
    """Figure 2, Leaders: empty AppendEntries are repeated "during idle periods". Under load a
    follower just sent entries is not idle and gets no heartbeat, yet every follower still hears
    from the leader at least once per heartbeat interval."""
    hb = 50.0
    sim, recs = run({"nodes": 5, "seed": 3, "duration_ms": 5000,
                     "workload": {"clients": 3, "rate_per_s": 20, "keys": 3}})
    (t_lead, lead, term), = leaders(recs)
    sent: dict[str, list[tuple[float, int]]] = {}
    for r in recs:
        if r["type"] == "send" and r["from"] == lead and r["msg"]["kind"] == "AppendEntries":
            sent.setdefault(r["to"], []).append((r["t"], len(r["msg"]["entries"])))
    assert set(sent) == set(sim.servers) - {lead}
    for peer, ts in sent.items():
        times = [t for t, _ in ts] + [5000.0]
        assert max(b - a for a, b in zip(times, times[1:])) <= hb, peer
        for (a, _), (b, n) in zip(ts, ts[1:]):
            if n == 0:  # a heartbeat: the follower had heard nothing for 3/4 of an interval
                assert b - a >= 0.75 * hb - 1e-9, (peer, a, b)
    # Sent every interval regardless, there would be one heartbeat per follower per 50 ms.
    every_tick = (5000 - t_lead) / hb * len(sent)
    heartbeats = sum(1 for ts in sent.values() for _, n in ts if n == 0)
    assert heartbeats < 0.8 * every_tick


def _cmd(req, value, client="c1"):
    return {"client": client, "req": req, "op": "write", "key": "k", "value": value}


def test_8_a_duplicated_command_is_answered_but_not_executed_again():
    """§8: the state machine tracks the latest serial numbers per client, so a command that reaches
    the log twice (a duplicated or retried request) takes effect once."""
    f = node("n2", peers=("n1", "n3"))
    ctx = FakeContext(node_id="n2")
    entries = [(1, _cmd(1, 10)), (1, _cmd(2, 20)), (1, _cmd(1, 10))]
    f.on_message(ctx, "n1", ae(1, 0, 0, entries, commit=3))
    assert f.last_applied == 3
    assert f.kv == {"k": 20}  # the second copy of request 1 did not overwrite request 2's write


def test_8_sessions_remember_at_least_the_newest_responses():
    from engine.protocols.raft.node import SESSION_MEMORY
    f = node("n2", peers=("n1", "n3"))
    ctx = FakeContext(node_id="n2")
    n = 3 * SESSION_MEMORY
    entries = [(1, _cmd(r, r)) for r in range(1, n + 1)]
    f.on_message(ctx, "n1", ae(1, 0, 0, entries, commit=n))
    remembered = f.sessions["c1"]
    assert SESSION_MEMORY <= len(remembered) <= 2 * SESSION_MEMORY
    assert set(range(n - SESSION_MEMORY + 1, n + 1)) <= set(remembered)  # the newest ones
    # a late duplicate of a recent request is still recognised
    f.on_message(ctx, "n1", ae(1, n, 1, [(1, _cmd(n - SESSION_MEMORY + 1, -1))], commit=n + 1))
    assert f.kv == {"k": n}
