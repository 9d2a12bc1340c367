"""The persistence model (engine/storage.py): messages wait for the write, a crash loses what was
not written, and without a latency nothing changes."""

from __future__ import annotations

import io

import orjson
import pytest

from engine.scenario import ScenarioError, parse_scenario
from engine.sim import Simulation
from engine.trace import TraceWriter


def three(storage=None, actions=(), **more) -> dict:
    """Three Raft servers, every link exactly 1 ms, timeouts long enough that only the actions
    start elections."""
    d = {"protocol": "raft", "nodes": 3, "seed": 3, "duration_ms": 60,
         "config": {"election_timeout_ms_min": 1000, "election_timeout_ms_max": 1000,
                    "heartbeat_ms": 500},
         "network": {"latency_ms_min": 1, "latency_ms_max": 1},
         "actions": [{"at": 0, "do": "timeout", "node": "n1"}, *actions], **more}
    if storage is not None:
        d["storage"] = storage
    return d


def records(d: dict, until: float | None = None) -> list[dict]:
    sim = Simulation(parse_scenario(d))
    out: list[dict] = []
    sim.subscribe(out.append)
    sim.run_until(until if until is not None else d["duration_ms"])
    return out


def sends(recs, kind=None, src=None) -> list[tuple[float, str, str, dict]]:
    return [(r["t"], r["from"], r["to"], r["msg"]) for r in recs if r["type"] == "send"
            and (kind is None or r["msg"]["kind"] == kind) and (src is None or r["from"] == src)]


def test_without_a_latency_replies_leave_at_once():
    recs = records(three())
    assert {t for t, *_ in sends(recs, "RequestVote")} == {0.0}
    assert {t for t, *_ in sends(recs, "RequestVoteResponse")} == {1.0}
    assert min(t for t, *_ in sends(recs, "AppendEntries")) == 2.0


def test_a_vote_leaves_only_when_the_write_is_done():
    """Constant 5 ms writes: the candidate's term and self-vote are written 0..5, so RequestVote
    leaves at 5 and arrives at 6; each voter writes its term and vote (one write, a group commit)
    6..11, so the votes leave at 11 and arrive at 12; the leader's no-op is written 12..17, so
    AppendEntries leaves at 17."""
    recs = records(three({"latency_ms_min": 5, "latency_ms_max": 5}))
    assert {t for t, *_ in sends(recs, "RequestVote")} == {5.0}
    votes = sends(recs, "RequestVoteResponse")
    assert {(t, s, m["granted"]) for t, s, _, m in votes} == {(11.0, "n2", True), (11.0, "n3", True)}
    leader = [r for r in recs if r["type"] == "state" and r.get("role") == "leader"]
    assert leader[0]["t"] == 12.0
    assert min(t for t, *_ in sends(recs, "AppendEntries")) == 17.0


def test_writes_queue_one_after_the_other():
    """n3 times out at 2 (term 1, written 2..7) and at 2.5 (term 2: the write starts when the first
    is done, 7..12): its RequestVotes leave at 7 and 12. n2 votes for n1 at 6 (written 6..11); n3's
    term-1 request at 8 is refused (n2 voted), and the refusal, sent while the write is pending,
    waits behind it too (11); the term-2 request at 13 is granted once written (18)."""
    d = three({"latency_ms_min": 5, "latency_ms_max": 5},
              actions=[{"at": 2, "do": "timeout", "node": "n3"},
                       {"at": 2.5, "do": "timeout", "node": "n3"}])
    recs = records(d)
    asks = sends(recs, "RequestVote", "n3")
    assert sorted({(t, m["term"]) for t, _, _, m in asks}) == [(7.0, 1), (12.0, 2)]
    from_n2 = sends(recs, "RequestVoteResponse", "n2")
    assert [(t, to, m["term"], m["granted"]) for t, _, to, m in from_n2] == [
        (11.0, "n1", 1, True), (11.0, "n3", 1, False), (18.0, "n3", 2, True)]


def test_a_crash_during_the_write_never_shows_the_lost_vote():
    """n2 grants its vote at 6 and crashes at 8, before the write is done: the vote is never sent,
    and n2 restarts with the state of its last completed write (term 0, no vote)."""
    d = three({"latency_ms_min": 5, "latency_ms_max": 5},
              actions=[{"at": 8, "do": "crash", "node": "n2"},
                       {"at": 9, "do": "restart", "node": "n2"}])
    sim = Simulation(parse_scenario(d))
    recs: list[dict] = []
    sim.subscribe(recs.append)
    sim.run_until(8.5)
    assert sim.persisted["n2"] == (0, None, [])
    sim.run_until(60)
    assert not [s for s in sends(recs, src="n2") if s[0] < 9]  # nothing left n2 before its crash
    assert sim.nodes["n2"].current_term >= 1  # it learnt the term again, afterwards, from n1
    assert sim.nodes["n1"].role == "leader" and not sim.violations  # with n3's vote


def test_a_crash_after_the_write_keeps_the_vote():
    d = three({"latency_ms_min": 5, "latency_ms_max": 5},
              actions=[{"at": 11.5, "do": "crash", "node": "n2"}])
    sim = Simulation(parse_scenario(d))
    sim.run_until(12)
    assert sim.persisted["n2"] == (1, "n1", [])


def test_a_paused_node_sends_what_its_write_released_when_it_resumes():
    d = three({"latency_ms_min": 5, "latency_ms_max": 5},
              actions=[{"at": 7, "do": "pause", "node": "n2"},
                       {"at": 20, "do": "resume", "node": "n2"}])
    recs = records(d)
    assert [t for t, *_ in sends(recs, "RequestVoteResponse", "n2")] == [20.0]
    assert [t for t, *_ in sends(recs, "RequestVoteResponse", "n3")] == [11.0]


def _trace(d: dict) -> list[bytes]:
    buf = io.BytesIO()
    sc = parse_scenario(d)
    sim = Simulation(sc)
    sim.subscribe(TraceWriter(buf, sc))
    sim.run()
    return buf.getvalue().splitlines()


def test_a_zero_latency_is_no_model_at_all():
    base = {"protocol": "raft", "nodes": 5, "seed": 11, "duration_ms": 4000,
            "nemesis": {"interval_ms": 300, "heal_ms": 3000}, "workload": {"kind": "kv"}}
    plain = _trace(base)
    zero = _trace({**base, "storage": {"latency_ms_min": 0, "latency_ms_max": 0}})
    assert plain[1:] == zero[1:] and len(plain) > 500  # (the header names the storage field)
    assert "storage" not in orjson.loads(plain[0])["scenario"]


@pytest.mark.parametrize("protocol,extra", [
    ("raft", {"workload": {"kind": "kv"}}),
    ("paxos", {"config": {"mode": "multi"}, "workload": {"kind": "kv"}}),
    ("zk", {}),
])
def test_with_writes_runs_are_deterministic_and_safe(protocol, extra):
    d = {"protocol": protocol, "nodes": 3, "seed": 4, "duration_ms": 4000,
         "nemesis": {"interval_ms": 250, "heal_ms": 3000},
         "storage": {"latency_ms_min": 1, "latency_ms_max": 6, "dist": "exponential"}, **extra}
    a, b = _trace(d), _trace(d)
    assert a == b
    assert a[1:] != _trace({**d, "storage": None})[1:]  # the writes did change the run
    sim = Simulation(parse_scenario(d))
    sim.run()
    assert not sim.violations


def test_snapshot_with_writes_in_flight_restores_the_same_world():
    d = three({"latency_ms_min": 5, "latency_ms_max": 5})
    sim = Simulation(parse_scenario(d))
    sim.run_until(7)
    assert sim.disk_busy("n2") and sim.views()["n2"]["disk"] is True
    copy = Simulation.restore(sim.snapshot())
    assert copy.digest() == sim.digest()
    sim.run_until(40)
    copy.run_until(40)
    assert copy.digest() == sim.digest()
    assert sim.views()["n2"]["disk"] is False


def test_no_storage_no_disk_field():
    sim = Simulation(parse_scenario(three()))
    sim.run_until(5)
    assert "disk" not in sim.views()["n1"]


def test_a_bad_storage_latency_is_named():
    with pytest.raises(ScenarioError, match="storage"):
        parse_scenario(three({"latency_ms_min": 5, "latency_ms_max": 2}))
    with pytest.raises(ScenarioError, match="storage.dist"):
        parse_scenario(three({"latency_ms_max": 2, "dist": "pareto"}))
