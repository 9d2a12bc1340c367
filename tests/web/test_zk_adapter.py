"""ZooKeeper's adapter (app/protocols/zk.py): pills by Zab phase, node summaries by kind, and the
lessons told in words, from real runs of the lesson scenarios."""

from __future__ import annotations

import json
from functools import partial

from app.protocols import get_adapter
from engine.scenario import parse_scenario
from engine.sim import Simulation

from .lesson_runs import SCENARIOS, told_run, told_scenario

A = get_adapter("zk")
told_run = partial(told_run, A)  # (name, until_ms) -> (sim, [(t, sentence)], {class: {labels}})


def test_every_message_of_a_leader_crash_gets_a_pill_of_its_phase():
    _, _, pills = told_run("zk_leader_crash")
    assert "other" not in pills, pills["other"]
    assert {"elect", "disc", "sync", "bcast", "ping", "client", "watch", "store", "store-ok"} <= set(pills)
    assert any(p.startswith("NEWEPOCH e2") for p in pills["disc"])
    assert any(p.startswith("PROPOSE 2.") for p in pills["bcast"])
    assert any(p.startswith("DIFF") for p in pills["sync"]) and "NEWLEADER e2" in pills["sync"]


def test_fencing_is_told_and_the_storage_summary_shows_the_rejected_write():
    sim, words, pills = told_run("zk_fencing")
    text = [s for _, s in words]
    assert any(s.startswith("c2's watch on /lock/c1-1-lock-0000000033 fired") for s in text)
    assert "c2 now holds the lock (its node /lock/c2-1-lock-0000000034 is the lowest): fencing token 34" in text
    assert "st REJECTED c1's write 'c1-stale': token 33 is older than 34 (fencing)" in text
    assert any("c1's session s1.1 expired" in s and "deleted in the same transaction" in s for s in text)
    assert "\u2717 REJECTED" in pills["store-bad"]
    st = A.node(sim.views()["st"], True, 0)
    assert st["kind"] == "storage" and st["token"] == 34 and st["rejected"] == 1
    assert st["recent"][-1] == ["c1", 33, False, "c1-stale", 34]


def test_without_fencing_the_stale_write_is_told_accepted():
    _, words, _ = told_run("zk_fencing_off")
    assert any(s.startswith("st accepted c1's write 'c1-stale' with token 33 although") for _, s in words)


def test_node_summaries_carry_the_tree_the_session_and_the_recipe():
    sim, _, _ = told_run("zk_lock_handover", 1200)
    views = sim.views()
    leader = next(v for v in views.values() if v.get("role") == "leading")
    srv = A.node(leader, False, 0)
    paths = {p: owner for p, _data, _version, owner, _cv in srv["tree"]}
    assert paths["/lock"] is None and "/lock/c2-1-lock-0000000001" in paths
    c2 = A.node(views["c2"], False, 0)
    assert c2["kind"] == "client" and c2["recipe"] == "wait" and paths[c2["lock_node"]] == c2["session"]
    assert 1200 - c2["timeout_ms"] < c2["heard"] <= 1200  # the session ring's start
    c1 = A.node(views["c1"], False, 0)
    assert c1["role"] == "down" and c1["heard"] is None


def test_the_live_session_is_three_servers_and_three_lock_clients_without_a_kv_workload():
    from app.settings import Settings
    d = A.default_scenario(Settings.from_env({}), 7)
    sc = parse_scenario(d)
    assert sc.protocol == "zk" and sc.nodes == 3 and sc.config.clients == 3 and sc.workload is None
    extras = A.hello(sc)
    assert extras["clients"] == ["c1", "c2", "c3"] and extras["storage"] == ["st"]
    assert extras["parent"] == "/lock" and extras["session_ms"] == 400.0


def test_user_actions_in_words():
    assert A.fault_words({"do": "acquire", "node": "c2"}) == "asked c2 to take the lock"
    assert A.fault_words({"do": "read", "node": "c1", "path": "/lock", "sync": True}) == "asked c1 to read /lock after sync"
    assert A.fault_words({"do": "crash", "node": "n1"}) == "crashed n1"


def test_words_name_the_client_of_a_session_after_the_told_state_was_rebuilt():
    # As after a seek: `describe`'s dict starts from the views, with no session record seen.
    d = json.loads((SCENARIOS / "zk_lock_handover.json").read_text())
    sim = Simulation(parse_scenario(d))
    sim.run_until(900)
    told = {nid: A.told(v) for nid, v in sim.views().items()}
    text: list[str] = []

    def obs(r):
        s = A.describe(r, told)
        if s:
            text.append(s)

    sim.subscribe(obs)
    sim.run_until(1700)
    assert any(w.startswith("c1's session s1.1 expired") for w in text), text
    assert any(w.startswith("c2's watch on /lock/c1-1-lock-0000000000 fired") for w in text), text


def told_actions(actions, duration_ms=2500, **config):
    """A run of the client API's actions (c1 on n1, c2 on n2) told as the page tells it."""
    d = {"protocol": "zk", "nodes": 3, "seed": 1, "duration_ms": duration_ms,
         "config": {"clients": 2, "auto": False, "home": {"c1": "n1", "c2": "n2"}, **config},
         "actions": [{"at": 300 + 100 * i, **a} for i, a in enumerate(actions)]}
    sim, words, pills = told_scenario(A, d)
    return sim, [w for _, w in words], pills


def test_the_client_api_and_its_errors_are_told_in_words_and_pills():
    sim, words, pills = told_actions([
        {"do": "create", "node": "c1", "path": "/data", "data": "a"},
        {"do": "get", "node": "c2", "path": "/data", "watch": True},
        {"do": "set", "node": "c1", "path": "/data", "data": "b", "version": 0},
        {"do": "set", "node": "c1", "path": "/data", "data": "c", "version": 0},
        {"do": "create", "node": "c2", "path": "/data", "data": "x"},
        {"do": "create", "node": "c1", "path": "/data/kid", "ephemeral": True},
        {"do": "delete", "node": "c2", "path": "/data"},
        {"do": "get_children", "node": "c2", "path": "/data", "sync": True},
        {"do": "exists", "node": "c2", "path": "/gone", "watch": True},
        {"do": "close", "node": "c1"},
    ])
    for want in ("You: asked c1 to create the node /data with 'a'", "You: asked c2 to read /data and leave a watch",
                 "You: asked c1 to set /data to 'b' at version 0", "You: asked c1 to close its session",
                 "c1 created the node /data (zxid 1.3)",
                 "c2 read /data from n2 (its state 1.3): 'a', version 0, and left a one-time watch on it",
                 "c1 set /data to 'b' at version 0: now version 1 (zxid 1.4)",
                 "c2's watch on /data fired: its data (or existence) changed (the watch is gone now)",
                 "c1's setData /data at version 0 failed on n1: BadVersion (its version is not the one asked)",
                 "c2's create /data failed on n2: NodeExists (the node already exists)",
                 "c2's delete /data at any version failed on n2: NotEmpty (it has children)",
                 "c2 asked n2 (its state 1.5) whether /gone exists: no, and left a one-time watch on it"):
        assert want in words, (want, words)
    assert any(w.startswith("c1 created the ephemeral node /data/kid (deleted when its session ends)") for w in words)
    assert any(w.startswith("c2 listed /data on n2") and "after sync: kid" in w for w in words), words
    assert any(w.startswith("c1 closed its session s1.1 (through n1)") for w in words), words
    assert any(w.startswith("c1's session s1.1 closed (zxid") and "/data/kid deleted in the same transaction" in w
               for w in words), words
    assert {"set /data v0", "ok v1", "err bad_version", "close session", "ok closed"} <= pills["client"], pills["client"]
    c1 = A.node(sim.views()["c1"], True, 0)
    assert c1["closed"] is True and c1["session"] is None
    assert "closed" not in A.node(sim.views()["c2"], True, 0)
