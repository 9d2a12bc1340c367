"""The thesis's two disk-overlap extensions of Raft (off by default): a candidate's own vote
written in parallel with its RequestVote (thesis §9.3), a leader's log written in parallel with
replicating it (thesis §10.2.1). One node driven by hand, then whole runs with the storage model."""

from __future__ import annotations

from engine import rng as rngmod
from engine.protocols.raft.config import RaftConfig
from engine.protocols.raft.node import CANDIDATE, LEADER, RaftNode

from .helpers import FakeContext, leaders, run, states


class DiskContext(FakeContext):
    """A FakeContext whose node has a write in flight until the test says it is done."""

    def __init__(self, *a, **kw):
        super().__init__(*a, **kw)
        self.pending = False
        self.sent_now: list[tuple[str, dict]] = []

    def persist(self):
        super().persist()
        self.pending = True

    def write_pending(self):
        return self.pending

    def send_now(self, to, msg):
        self.sent_now.append((to, msg))


def node(**cfg):
    peers = ["n2", "n3", "n4", "n5"]
    return RaftNode("n1", peers, RaftConfig(**cfg), rngmod.stream(1, "n1"))


def grant(n, ctx, src):
    n.on_message(ctx, src, {"kind": "RequestVoteResponse", "term": n.current_term,
                            "granted": True})


def test_9_3_request_vote_leaves_before_the_candidates_own_write():
    n, ctx = node(overlap_vote_write=True), DiskContext()
    n.on_timer(ctx, "election")
    assert n.role == CANDIDATE and ctx.persists == 1
    assert [to for to, m in ctx.sent_now if m["kind"] == "RequestVote"] == ["n2", "n3", "n4", "n5"]
    assert ctx.sent == []  # nothing waits behind the write


def test_9_3_the_candidate_counts_its_own_vote_only_once_it_is_durable():
    n, ctx = node(overlap_vote_write=True), DiskContext()
    n.on_timer(ctx, "election")
    for src in ("n2", "n3", "n4"):  # three of four others: a majority with our own vote
        grant(n, ctx, src)
    assert n.role == CANDIDATE  # our vote is not on disk yet
    ctx.pending = False
    n.on_written(ctx)
    assert n.role == LEADER


def test_9_3_a_durable_own_vote_and_one_more_grant_still_wait_for_a_majority():
    n, ctx = node(overlap_vote_write=True), DiskContext()
    n.on_timer(ctx, "election")
    ctx.pending = False
    n.on_written(ctx)
    grant(n, ctx, "n2")
    assert n.role == CANDIDATE
    grant(n, ctx, "n3")
    assert n.role == LEADER


def test_9_3_off_by_default_request_vote_waits_for_the_write():
    n, ctx = node(), DiskContext()
    n.on_timer(ctx, "election")
    assert ctx.sent_now == [] and len(ctx.of_kind("RequestVote")) == 4


def leader(**cfg):
    n, ctx = node(overlap_vote_write=True, **cfg), DiskContext()
    n.on_timer(ctx, "election")
    ctx.pending = False
    n.on_written(ctx)
    grant(n, ctx, "n2")
    grant(n, ctx, "n3")
    assert n.role == LEADER
    return n, ctx


def ack(n, ctx, src, match):
    n.on_message(ctx, src, {"kind": "AppendEntriesResponse", "term": n.current_term,
                            "success": True, "match_index": match})


def test_10_2_1_append_entries_leave_before_the_leaders_own_write():
    n, ctx = leader(leader_parallel_write=True)
    assert ctx.pending  # the no-op is being written
    assert {to for to, m in ctx.sent_now if m["kind"] == "AppendEntries"} == {"n2", "n3", "n4", "n5"}


def test_10_2_1_the_leaders_own_match_index_is_what_is_durable():
    n, ctx = leader(leader_parallel_write=True)
    ack(n, ctx, "n2", 1)
    ack(n, ctx, "n3", 1)
    assert n.commit_index == 0  # two followers and the leader's unwritten no-op: not a majority
    ctx.pending = False
    n.on_written(ctx)
    assert n.commit_index == 1


def test_10_2_1_a_majority_of_followers_commits_before_the_leaders_own_write():
    n, ctx = leader(leader_parallel_write=True)
    for src in ("n2", "n3", "n4"):
        ack(n, ctx, src, 1)
    assert ctx.pending and n.commit_index == 1  # "this is still safe" (thesis §10.2.1)


def cluster(**cfg):
    return {"protocol": "raft", "nodes": 5, "seed": 2, "duration_ms": 3000,
            "config": {"election_timeout_ms_min": 150, "election_timeout_ms_max": 300,
                       "heartbeat_ms": 50, **cfg},
            "network": {"latency_ms_min": 1, "latency_ms_max": 1},
            "storage": {"latency_ms_min": 5, "latency_ms_max": 5},
            "actions": [{"at": 0, "do": "timeout", "node": "n1"}]}


def first_request_vote_sent(recs):
    return next(r["t"] for r in recs if r["type"] == "send" and r["msg"]["kind"] == "RequestVote")


def test_in_a_run_request_vote_leaves_at_the_timeout_with_the_overlap_and_a_write_later_without():
    _, off = run(cluster(), until_ms=50)
    _, on = run(cluster(overlap_vote_write=True), until_ms=50)
    assert first_request_vote_sent(off) == 5.0 and first_request_vote_sent(on) == 0.0
    # elected when the votes are back: 1 ms there, the voter's 5 ms write, 1 ms back
    assert [t for t, n, _ in leaders(on)] == [7.0]
    assert [t for t, n, _ in leaders(off)] == [12.0]


def test_with_both_overlaps_crashes_and_restarts_keep_every_invariant():
    for seed in range(6):
        d = cluster(overlap_vote_write=True, leader_parallel_write=True)
        d.update(seed=seed, duration_ms=4000)
        d["storage"] = {"latency_ms_min": 1, "latency_ms_max": 20}
        d["actions"] = [{"at": 0, "do": "timeout", "node": "n1"}] + [
            {"at": t, "do": "crash_target", "target": "leader", "within_ms": 30}
            for t in (500, 1500, 2500)] + [
            {"at": t + 400, "do": "restart", "node": n} for t in (500, 1500, 2500)
            for n in ("n1", "n2", "n3", "n4", "n5")]
        sim, recs = run(d)
        assert not sim.violations, (seed, sim.violations[:1])
        assert any(r["role"] == "leader" and r["t"] > 2600 for r in states(recs))
