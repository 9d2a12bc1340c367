"""Each protocol's sweep measures on a scenario whose value is known by construction: fixed link
latencies (min = max), so a path of k one-way hops takes exactly k x latency."""

from __future__ import annotations

import orjson
import pytest

from engine.protocols import get_protocol
from engine.run import run_scenario
from engine.scenario import parse_scenario


def measure(data: dict, observers=()) -> dict:
    scn = parse_scenario(data)
    return run_scenario(scn, observers=observers, measures=get_protocol(scn.protocol).measures)["measures"]


def fixed(ms: float) -> dict:
    return {"latency_ms_min": ms, "latency_ms_max": ms}


# --- Raft --------------------------------------------------------------------------------------

def raft(lat: float, actions: list) -> dict:
    # Election timeouts far above the run's events: only the forced `timeout`s elect anyone.
    return {"protocol": "raft", "nodes": 3, "seed": 1, "duration_ms": 2500, "network": fixed(lat),
            "config": {"election_timeout_ms_min": 5000, "election_timeout_ms_max": 6000,
                       "heartbeat_ms": 100},
            "actions": [{"at": 10, "do": "timeout", "node": "n1"}] + actions}


def writes(at: list[float], node="n1") -> list:
    return [{"at": t, "do": "request", "node": node, "op": "write", "key": "k", "value": i}
            for i, t in enumerate(at)]


@pytest.mark.parametrize("lat", [5, 10])
def test_commit_latency_is_four_hops(lat):
    """The user's client -> leader, AppendEntries out, the acks back (commit), the reply: 4 hops."""
    assert measure(raft(lat, writes([500, 700, 900])))["commit_latency_ms"] == 4 * lat


def test_commit_latency_is_the_median_and_none_without_a_commit():
    # The write at 1000 goes to a follower first: redirected (2 more hops), it takes 6 hops.
    slow = writes([1000], node="n2")
    got = measure(raft(10, writes([500, 700]) + slow))["commit_latency_ms"]
    assert got == 40.0  # median of 40, 40, 60
    assert measure(raft(10, writes([1000], node="n2")))["commit_latency_ms"] == 60.0
    assert measure(raft(10, []))["commit_latency_ms"] is None


def test_leader_changes_counts_elections_after_the_first():
    assert measure(raft(10, []))["leader_changes"] == 0
    crash = [{"at": 500, "do": "crash", "node": "n1"}, {"at": 600, "do": "timeout", "node": "n2"}]
    assert measure(raft(10, crash))["leader_changes"] == 1
    back = crash + [{"at": 800, "do": "restart", "node": "n1"}, {"at": 1200, "do": "timeout", "node": "n1"}]
    assert measure(raft(10, back))["leader_changes"] == 2
    none = {**raft(10, []), "actions": []}
    assert measure(none)["leader_changes"] is None


# --- load balancing ----------------------------------------------------------------------------

def lb(backend: dict, actions=()) -> dict:
    return {"protocol": "lb", "nodes": 1, "seed": 3, "duration_ms": 5000, "network": fixed(2),
            "config": {"algorithm": "round_robin", "backends": [backend]},
            "workload": {"kind": "open_loop", "rate_per_s": 20,
                         "cost": {"dist": "constant", "mean_ms": 10}},
            "actions": list(actions)}


def test_lb_latency_p99_is_four_hops_plus_the_cost():
    """Client -> balancer -> backend, 10 ms of service, and back: every request served takes
    4 x 2 + 10 ms, so every percentile is 18 ms."""
    got = measure(lb({"concurrency": 1, "queue": 0}))
    assert got["latency_p99_ms"] == 18.0
    assert got["max_backend_load"] == 1  # concurrency 1, no queue: never more than one


def test_lb_max_load_is_the_backend_capacity_when_it_cannot_keep_up():
    """A backend 1000x too slow fills its one slot and its queue of 5 and stays full."""
    got = measure(lb({"concurrency": 1, "queue": 5, "speed": 0.001}))
    assert got["max_backend_load"] == 6
    assert got["latency_p99_ms"] is None  # nothing is served within the run


def test_lb_drops_are_every_request_lost():
    ended = []

    def count(rec):
        if rec["type"] == "request" and rec["event"] in ("arrive", "reject", "timeout"):
            ended.append(rec["event"])

    got = measure(lb({"concurrency": 1, "queue": 5}, [{"at": 0, "do": "crash", "node": "b1"}]),
                  observers=[count])
    arrived = ended.count("arrive")
    assert arrived > 50
    assert got["drops"] == ended.count("reject") + ended.count("timeout") > 0
    assert got["max_backend_load"] is None and got["latency_p99_ms"] is None
    assert measure(lb({"concurrency": 4, "queue": 16}))["drops"] == 0  # 20/s of 10 ms: 20% busy


# --- Paxos -------------------------------------------------------------------------------------

@pytest.mark.parametrize("nodes", [3, 5])
def test_paxos_choose_ms_is_three_hops_after_the_proposal(nodes):
    """Prepare, Promise, Accept: the proposer's own acceptor votes at once, the remote ones on
    arrival, so a majority has accepted 3 hops after the proposal."""
    data = {"protocol": "paxos", "nodes": nodes, "seed": 1, "duration_ms": 1000, "network": fixed(10),
            "actions": [{"at": 100, "do": "propose", "node": "n1", "value": "x"}]}
    assert measure(data)["choose_ms"] == 130.0
    assert measure({**data, "actions": []})["choose_ms"] is None


# --- ZooKeeper ---------------------------------------------------------------------------------

def zk(lat: float, actions=(), **config) -> dict:
    return {"protocol": "zk", "nodes": 3, "seed": 4, "duration_ms": 3000, "network": fixed(lat),
            "config": {"clients": 3, "auto": False, "session_timeout_ms": 400.0, **config},
            "actions": list(actions)}


@pytest.mark.parametrize("lat", [5, 10])
def test_zk_elect_ms_is_two_vote_hops_finalize_wait_and_five_hops(lat):
    """Votes and the answers they provoke (2 hops), FLE's finalizeWait, then CEPOCH, NEWEPOCH,
    ACKEPOCH, NEWLEADER, ACKLD (5 hops): the leader is in broadcast."""
    assert measure(zk(lat, finalize_wait_ms=40.0))["elect_ms"] == 40 + 7 * lat


LOCK = [{"at": 300, "do": "acquire", "node": "c1"}, {"at": 450, "do": "acquire", "node": "c2"}]


@pytest.mark.parametrize("lat", [5, 10])
def test_zk_lock_handover_on_release_is_seven_hops(lat):
    """c1 releases: its delete reaches the leader, PROPOSE, ACK, COMMIT to c2's server, the
    watch's Event to c2, c2 lists the children and gets the answer: 7 hops."""
    got = measure(zk(lat, LOCK + [{"at": 1000, "do": "release", "node": "c1"}]))
    assert got["lock_handover_ms"] == 7 * lat


def test_zk_lock_handover_after_a_crash_waits_for_the_session_to_expire():
    """A crashed holder's lock moves only when its session expires: about the session timeout
    later (its last ping may be up to a third of it before the crash; expiry is checked per
    tick), plus the hops of the handover itself."""
    for timeout in (400.0, 800.0):
        got = measure(zk(5, LOCK + [{"at": 1000, "do": "crash", "node": "c1"}],
                         session_timeout_ms=timeout))["lock_handover_ms"]
        assert timeout * 2 / 3 <= got <= timeout + 50 + 7 * 5, (timeout, got)
    assert measure(zk(5, LOCK))["lock_handover_ms"] is None  # nobody lets go
    alone = [{"at": 300, "do": "acquire", "node": "c1"}, {"at": 1000, "do": "release", "node": "c1"},
             {"at": 1500, "do": "acquire", "node": "c2"}]
    assert measure(zk(5, alone))["lock_handover_ms"] is None  # nobody was waiting: no handover


def test_every_registered_measure_is_a_measure_with_its_own_name():
    from engine.measures import Measure
    from engine.protocols import known_protocols

    for p in known_protocols():
        for name, cls in get_protocol(p).measures.items():
            assert issubclass(cls, Measure) and cls.name == name and cls.doc, (p, name)
    assert orjson.dumps(sorted(get_protocol("lb").measures)) == b'["drops","latency_p99_ms","max_backend_load"]'
