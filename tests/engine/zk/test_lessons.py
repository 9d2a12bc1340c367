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
    # The story: the lock taken 33 times before (/lock's counter starts at 33), so c1
    # holds it with token 33 and c2 takes it with 34.
    d = lesson("zk_fencing")
    assert d["config"]["initial_tree"] == {"/lock": {"cversion": 33}}
    sim, recs = run(d)
    writes = of(recs, "write")
    assert [(w["client"], w["token"], w["accepted"]) for w in writes] == [
        ("c1", 33, True), ("c2", 34, True), ("c1", 33, False)]
    assert [round(w["t"]) for w in writes] == [711, 1810, 2214]
    expiry = of(recs, "txn", op="session_expire", node="n1")[0]
    assert 1200 <= expiry["t"] < 1300 and expiry["deleted"] == ["/lock/c1-1-lock-0000000033"]
    c2 = [r for r in of(recs, "state", node="c2") if r["holds_lock"]][0]
    assert c2["token"] == 34 and expiry["t"] < c2["t"] < 1300
    c1 = [r for r in of(recs, "state", node="c1") if r["t"] <= 2200]
    assert c1[-1]["holds_lock"] is True and c1[-1]["token"] == 33  # still believed it on waking
    assert of(recs, "session", client="c1", event="expire")[0]["t"] > 2200  # learned on reconnect
    assert sim.nodes["st"].value == "c2" and sim.violations == []


def test_without_fencing_the_storage_is_corrupted():
    sim, recs = run(lesson("zk_fencing_off"))
    assert [(w["client"], w["token"], w["accepted"]) for w in of(recs, "write")] == [
        ("c1", 33, True), ("c2", 34, True), ("c1", 33, True)]
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


def test_active_standby_failover():
    sim, recs = run(lesson("zk_active_standby"))
    active = [(r["node"], r["t"], r["token"]) for r in of(recs, "state") if r.get("holds_lock")]
    assert active[0][:1] == ("c1",) and active[0][2] == 0
    takeover = [a for a in active if a[0] != "c1"][0]
    assert takeover[0] == "c3" and takeover[2] == 1 and 1400 < takeover[1] < 1700
    fires = [r for r in of(recs, "watch", event="fire") if 1000 < r["t"] < 2000]
    assert len(fires) == 1 and fires[0]["path"] == "/election/c1-1-lock-0000000000"
    assert not any(r.get("holds_lock") for r in of(recs, "state", node="c2"))
    assert {w["client"] for w in of(recs, "write") if w["t"] > 1500} == {"c3"}
    back = [r for r in of(recs, "state", node="c1") if r["t"] > 2000 and r["lock_node"]]
    assert back and back[-1]["role"] == "standby"
    assert sim.violations == []


def test_predecessor_watching_wakes_one_waiter():
    sim, recs = run(lesson("zk_predecessor_watch"))
    woken = [r["session"] for r in of(recs, "watch", event="fire")]
    assert len(woken) == 1  # c1's release wakes c2 alone; nothing else fired all run
    assert sum(sim.nodes[c].woken for c in ("c1", "c2", "c3", "c4", "c5")) == 1
    herd, _ = run(lesson("zk_herd"))
    assert sum(herd.nodes[c].woken for c in ("c1", "c2", "c3", "c4", "c5")) > 4
    assert sim.violations == []


def test_group_membership_follows_a_member_s_crash_and_return():
    sim, recs = run(lesson("zk_group"), until_ms=1000)
    members = lambda c: sim.views()[c]["members"]
    everyone = ["c3-1-member-0000000000", "c1-1-member-0000000001", "c2-1-member-0000000002"]
    assert members("c1") == members("c3") == everyone  # each sees the whole group
    assert all(sim.views()[c]["role"] == "member" for c in ("c1", "c2", "c3"))
    sim2, recs2 = run(lesson("zk_group"))
    expiry = of(recs2, "txn", op="session_expire", node="n1")[0]
    assert 1300 <= expiry["t"] < 1600 and expiry["deleted"] == ["/group/c2-1-member-0000000002"]
    # the others' children watches fired with the expiry, and they listed the group again
    fired = {r["session"] for r in of(recs2, "watch", event="fire") if 1300 <= r["t"] < 1700}
    assert len(fired) >= 2
    final = sim2.views()
    back = ["c3-1-member-0000000000", "c1-1-member-0000000001", "c2-1-member-0000000003"]
    assert final["c1"]["members"] == final["c3"]["members"] == final["c2"]["members"] == back
    assert sim2.violations == []  # (every member watching the group is the recipe, not a herd)


def test_group_membership_under_the_nemesis_breaks_nothing():
    from .harness import nemesis_scenario
    for seed in range(12):
        sim, _ = run(nemesis_scenario(seed, 3, 4000, 3000, {"recipe": "group"}))
        assert sim.violations == [], (seed, sim.violations[:1])


def test_the_two_zab_mutation_lessons_break_what_their_notes_say_and_are_clean_without():
    # Each found by `playground search` (a minimised counterexample) and kept as a lesson.
    for name, mutation, first in (("zk_propose_to_acked_only", "propose_to_acked_only",
                                   ("PrefixConsistency", 2586.672, "n3")),
                                  ("zk_expire_without_quorum", "expire_without_quorum",
                                   ("Integrity", 3665.01, "n3"))):
        d = lesson(name)
        assert d["config"]["mutations"] == [mutation]
        sim, recs = run(d)
        v = sim.violations[0]
        assert (v["invariant"], v["t"], v["nodes"]) == (first[0], first[1], [first[2]]), v
        clean = dict(d, config={k: x for k, x in d["config"].items() if k != "mutations"})
        sim, _ = run(clean)
        assert sim.violations == [], sim.violations[:1]
    # What the notes name: the proposal n3 never got, and the expiries n3 made alone.
    _, recs = run(lesson("zk_propose_to_acked_only"), messages=True)
    to_n3 = [r["msg"]["zxid"] for r in of(recs, "send", to="n3") if r["msg"].get("kind") == "PROPOSE"]
    assert [3, 1] not in to_n3 and [3, 2] in to_n3
    _, recs = run(lesson("zk_expire_without_quorum"))
    alone = [(round(r["t"]), r["session"], r["zxid"]) for r in of(recs, "txn", op="session_expire", node="n3")]
    assert alone[:2] == [(3665, "s1.2", [1, 40]), (3715, "s1.1", [1, 40])]


def test_a_partitioned_client_sees_itself_disconnected_and_learns_of_expiry_only_on_reconnect():
    # c1 holds the lock, then is partitioned away from every server (1000 ms) past its session
    # timeout; the leader expires its session meanwhile (its ephemeral node goes with it); c1
    # only says "disconnected" until the partition heals (2300 ms), when a server tells it.
    d = {"protocol": "zk", "nodes": 3, "seed": 3, "duration_ms": 3000,
         "config": {"clients": 2, "auto": False, "session_timeout_ms": 400.0},
         "actions": [{"at": 300, "do": "acquire", "node": "c1"},
                     {"at": 1000, "do": "partition", "groups": [["c1"]]},
                     {"at": 2300, "do": "heal"}]}
    sim, recs = run(d)
    ev = [(r["event"], r["t"]) for r in of(recs, "session", client="c1")]
    disc = [t for e, t in ev if e == "disconnect"]
    exp = of(recs, "txn", op="session_expire")
    assert disc and 1000 < disc[0] < 1400, ev
    assert exp and disc[0] < exp[0]["t"] < 2300 and exp[0]["deleted"], exp
    learned = [t for e, t in ev if e == "expire"]
    assert learned and learned[0] > 2300, ev  # on reconnect, not before
    assert not [t for e, t in ev if e == "expire" and t < 2300]
    assert sim.violations == []


def test_a_create_whose_reply_was_lost_is_found_by_its_guid_not_made_twice():
    # The lock recipe's GUID prefix (ZooKeeper's recipes page): a client that lost the reply to
    # its create lists the children and takes the node with its own GUID, instead of creating a
    # second one, after a sync (the server it reconnected to may not have applied the create yet:
    # without the sync, seed 7 made c2-2's node twice). Under the nemesis (lost messages, cuts,
    # crashes) it happens a few times in 40 runs; each time the node it took is the one its
    # create made, and only one was made.
    from .harness import nemesis_scenario

    recovered = 0
    for seed in range(40):
        _, recs = run(nemesis_scenario(seed, 3, 4000, 3000))
        leader = next(r["node"] for r in recs if r["type"] == "txn")  # one server's commits
        creates = [r["path"] for r in of(recs, "txn", op="create", node=leader)]
        prev: dict = {}
        for r in recs:
            if r["type"] != "state" or not r["node"].startswith("c"):
                continue
            p = prev.get(r["node"])
            prev[r["node"]] = r
            if p and p.get("recipe") == "recover" and r.get("recipe") != "recover" and r.get("lock_node"):
                recovered += 1
                guid = r["lock_node"].rsplit("/", 1)[1].split("-lock-")[0]
                assert guid.startswith(r["node"] + "-"), r
                made = [c for c in creates if c.rsplit("/", 1)[1].startswith(guid + "-lock-")]
                assert made == [r["lock_node"]], (seed, r["lock_node"], made)
    assert recovered >= 3

