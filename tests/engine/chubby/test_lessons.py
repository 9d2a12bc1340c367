"""The Chubby lessons (scenarios/chubby_*.json, and zk_failover beside chubby_failover): each runs
and shows what its notes say, at the instants they name."""

from __future__ import annotations

from ..zk.test_lessons import lesson, of
from .harness import run

LOCK = "/ls/cell/lock"


def masters(recs):
    """(node, epoch, first time) of each master."""
    out = {}
    for r in of(recs, "state", role="master"):
        out.setdefault((r["node"], r["epoch"]), r["t"])
    return [(n, e, t) for (n, e), t in out.items()]


def holds(recs, client):
    return [(r["t"], r["token"]) for r in of(recs, "state", node=client) if r["holds_lock"]]


def test_failover_while_a_client_holds_the_lock():
    sim, recs = run(lesson("chubby_failover"))
    (m1, e1, t1), (m2, e2, t2) = masters(recs)
    assert (m1, e1, m2, e2) == ("n1", 1, "n3", 2) and t1 < 300
    assert 1500 + 400 <= t2 < 2500  # the old master's lease waited out (§2.12)
    jeop = of(recs, "session", client="c1", event="jeopardy")
    back = of(recs, "session", client="c1", event="reconnect")
    assert len(jeop) == 1 and 1500 < jeop[0]["t"] < t2 < back[0]["t"] < jeop[0]["t"] + 2000
    assert back[0]["server"] == "n3"
    c1 = [r for r in of(recs, "state", node="c1") if 1500 <= r["t"] < 3500]
    assert all(r["holds_lock"] and r["token"] == 1 for r in c1)  # the lock outlived the master
    assert [(w["client"], w["token"], w["accepted"]) for w in of(recs, "write")] == [
        ("c1", 1, True), ("c1", 1, True), ("c2", 2, True)]
    assert holds(recs, "c2")[0][0] > 3500 and sim.violations == []


def test_zookeeper_on_the_same_failover():
    chubby, zk = lesson("chubby_failover"), lesson("zk_failover")
    assert {k: zk[k] for k in ("nodes", "seed", "duration_ms")} == {
        k: chubby[k] for k in ("nodes", "seed", "duration_ms")}
    assert [a["at"] for a in zk["actions"]] == [a["at"] for a in chubby["actions"]]
    sim, recs = run(zk)
    leaders = [(r["node"], r["epoch"]) for r in of(recs, "state", role="leading", phase="broadcast")]
    assert leaders[0] == ("n5", 1) and ("n5", 2) not in leaders and any(e == 2 for _, e in leaders)
    assert of(recs, "session", client="c1", event="disconnect")
    assert not of(recs, "session", client="c1", event="expire")
    assert [(w["client"], w["accepted"]) for w in of(recs, "write")] == [
        ("c1", True), ("c1", True), ("c2", True)]
    assert holds(recs, "c2")[0][0] > 3500 and sim.violations == []


def test_jeopardy_and_grace_period_across_a_long_failover():
    sim, recs = run(lesson("chubby_jeopardy"))
    jeop = of(recs, "session", client="c1", event="jeopardy")[0]["t"]
    back = of(recs, "session", client="c1", event="reconnect")[0]["t"]
    assert 1000 < jeop < 1300 and 2600 < back < jeop + 3000  # within the 3000 ms grace period
    assert not of(recs, "session", event="grace_end") and not of(recs, "session", event="expire")
    release = of(recs, "txn", op="release", node="n5")
    assert release and release[0]["t"] > back  # the release clicked at 2000 ms was blocked
    assert masters(recs)[-1][:2] == ("n5", 2) and masters(recs)[-1][2] > 2200 + 400
    assert holds(recs, "c2") and holds(recs, "c2")[0][1] == 2 and sim.violations == []


def test_session_lost_and_the_lock_waits_out_lock_delay():
    sim, recs = run(lesson("chubby_lock_delay"))
    jeop = of(recs, "session", client="c1", event="jeopardy")[0]["t"]
    expire = of(recs, "txn", op="expire", node="n1")[0]
    assert expire["freed"] == [LOCK] and jeop < expire["at_ms"]
    assert expire["delay_until_ms"] == expire["at_ms"] + 1000
    taken = of(recs, "txn", op="acquire", node="n1", client="c2")[0]
    assert taken["generation"] == 2 and expire["at_ms"] + 1000 <= taken["t"] < expire["at_ms"] + 1100
    grace_end = of(recs, "session", client="c1", event="grace_end")[0]["t"]
    assert grace_end == jeop + 2000
    assert [(w["client"], w["token"], w["accepted"]) for w in of(recs, "write")] == [
        ("c1", 1, True), ("c2", 2, True), ("c1", 1, False)]  # the stale sequencer refused
    assert of(recs, "session", client="c1", event="open")[-1]["session"] == "c1.2"
    assert sim.nodes["st"].value == "c2" and sim.violations == []


def test_no_lock_delay_is_caught():
    sim, recs = run(lesson("chubby_no_lock_delay"))
    expire = of(recs, "txn", op="expire", node="n1")[0]
    taken = of(recs, "txn", op="acquire", node="n1", client="c2")[0]
    assert expire["delay_until_ms"] == expire["at_ms"] and taken["t"] - expire["at_ms"] < 100
    assert [v["invariant"] for v in sim.violations] == ["Lock-delay respected"]


def test_closing_a_session_frees_its_lock_without_lock_delay():
    d = lesson("chubby_failover")
    d["actions"] = [{"at": 500, "do": "acquire", "node": "c1"}, {"at": 700, "do": "acquire", "node": "c2"},
                    {"at": 1000, "do": "close", "node": "c1"}, {"at": 1500, "do": "acquire", "node": "c1"}]
    sim, recs = run(d)
    close = of(recs, "txn", op="close", node="n2")[0]
    assert close["freed"] == [LOCK] and of(recs, "session", client="c1", event="close")
    taken = of(recs, "txn", op="acquire", node="n2", client="c2")[0]
    assert taken["generation"] == 2 and taken["t"] - close["t"] < 100  # no lock-delay
    assert [r["session"] for r in of(recs, "session", client="c1", event="open")] == ["c1.1", "c1.2"]
    assert sim.nodes["n1"].db.sessions == {"c1.2": "c1", "c2.1": "c2"} and sim.violations == []


def test_without_fencing_the_stale_sequencer_overwrites():
    d = lesson("chubby_lock_delay")
    d["config"]["mutations"] = ["no_fencing"]
    sim, recs = run(d)
    assert [(w["client"], w["token"], w["accepted"]) for w in of(recs, "write")] == [
        ("c1", 1, True), ("c2", 2, True), ("c1", 1, True)]
    assert sim.nodes["st"].value == "c1-stale"
    assert [v["invariant"] for v in sim.violations] == ["Fencing tokens never go back"]
