"""The ZooKeeper lessons (scenarios/zk_*.json): each runs, and shows what its notes say at the
instants they name."""

from __future__ import annotations

import json

from tests.engine.helpers import SCENARIOS

from .harness import run


def lesson(name: str) -> dict:
    return json.loads((SCENARIOS / f"{name}.json").read_text())


def of(recs, typ, **match):
    return [r for r in recs if r["type"] == typ and all(r.get(k) == v for k, v in match.items())]


def test_fencing_stops_the_paused_holder():
    sim, recs = run(lesson("zk_fencing"))
    writes = of(recs, "write")
    assert [(w["client"], w["token"], w["accepted"]) for w in writes] == [
        ("c1", 0, True), ("c2", 1, True), ("c1", 0, False)]
    expiry = of(recs, "txn", op="session_expire", node="n1")[0]
    assert 1200 <= expiry["t"] < 1400 and expiry["deleted"] == ["/lock/c1-1-lock-0000000000"]
    c1 = [r for r in of(recs, "state", node="c1") if r["t"] <= 2200]
    assert c1[-1]["holds_lock"] is True and c1[-1]["token"] == 0  # still believed it on waking
    assert of(recs, "session", client="c1", event="expire")[0]["t"] > 2200  # learned on reconnect
    assert sim.nodes["st"].value == "c2" and sim.violations == []


def test_without_fencing_the_storage_is_corrupted():
    sim, recs = run(lesson("zk_fencing_off"))
    assert [(w["client"], w["token"], w["accepted"]) for w in of(recs, "write")] == [
        ("c1", 0, True), ("c2", 1, True), ("c1", 0, True)]
    assert sim.nodes["st"].value == "c1-stale"
    assert [v["invariant"] for v in sim.violations] == ["Fencing tokens never go back"]


def test_lock_handover_wakes_the_next_waiter_only():
    sim, recs = run(lesson("zk_lock_handover"))
    exp = of(recs, "txn", op="session_expire", node="n1")
    assert len(exp) == 1 and exp[0]["deleted"] == ["/lock/c1-1-lock-0000000000"]
    fires = of(recs, "watch", event="fire")
    assert len(fires) == 1 and fires[0]["path"] == "/lock/c1-1-lock-0000000000"
    c2 = [r for r in of(recs, "state", node="c2") if r["holds_lock"]]
    assert c2 and c2[0]["token"] == 1 and 1400 < c2[0]["t"] < 1700
    assert not any(r["holds_lock"] for r in of(recs, "state", node="c3"))
    assert sim.violations == []


def test_herd_effect_against_predecessor_watching():
    herd = lesson("zk_herd")
    sim, recs = run(herd)
    woken = {r["session"] for r in of(recs, "watch", event="fire") if 1200 <= r["t"] < 1400}
    assert len(woken) == 4
    assert {v["invariant"] for v in sim.violations} == {"No herd effect"}
    herd["config"]["mutations"] = []
    sim, recs = run(herd)
    woken = {r["session"] for r in of(recs, "watch", event="fire") if 1200 <= r["t"] < 1400}
    assert len(woken) == 1 and sim.violations == []


def test_leader_crash_and_zab_recovery():
    sim, recs = run(lesson("zk_leader_crash"))
    leaders = [(r["node"], r["epoch"], r["t"]) for r in of(recs, "state", role="leading", phase="broadcast")]
    assert leaders[0][:2] == ("n5", 1) and leaders[0][2] < 300
    after = [l for l in leaders if l[1] == 2]
    assert after and 1500 < after[0][2] < 2500 and after[0][0] != "n5"
    phases = [r["phase"] for r in of(recs, "state", node=after[0][0]) if 1500 < r["t"] <= after[0][2]]
    assert phases[-3:] == ["discovery", "synchronization", "broadcast"]
    n5 = [r for r in of(recs, "state", node="n5") if r["t"] >= 3000]
    assert n5[-1]["role"] == "following" and n5[-1]["epoch"] == 2
    assert sim.nodes["n5"].committed_zxid() == sim.nodes[after[0][0]].committed_zxid()
    assert len({tuple(r["zxid"]) for r in of(recs, "txn") if r["zxid"][0] == 2}) > 10
    assert sim.violations == []


def test_a_stale_read_and_sync():
    sim, recs = run(lesson("zk_stale_read"))
    held = [r for r in of(recs, "state", node="c2") if r["holds_lock"]][0]
    stale, fresh = of(recs, "read", client="c1")
    assert held["t"] < stale["t"] and stale["server"] == "n1" and stale["children"] == []
    assert fresh["children"] == ["c2-1-lock-0000000000"] and fresh["zxid"] == held["lock_zxid"]
    assert sim.violations == []
