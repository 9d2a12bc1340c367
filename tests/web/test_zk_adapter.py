"""ZooKeeper's adapter (app/protocols/zk.py): pills by Zab phase, node summaries by kind, and the
lessons told in words, from real runs of the lesson scenarios."""

from __future__ import annotations

import json
from functools import partial

from app.protocols import get_adapter
from engine.scenario import parse_scenario
from engine.sim import Simulation

from .lesson_runs import SCENARIOS, told_run

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
    assert any(s.startswith("c2's watch on /lock/c1-1-lock-0000000000 fired") for s in text)
    assert "c2 now holds the lock (its node /lock/c2-1-lock-0000000001 is the lowest): fencing token 1" in text
    assert "st REJECTED c1's write 'c1-stale': token 0 is older than 1 (fencing)" in text
    assert any("c1's session s1.1 expired" in s and "deleted in the same transaction" in s for s in text)
    assert "\u2717 REJECTED" in pills["store-bad"]
    st = A.node(sim.views()["st"], True, 0)
    assert st["kind"] == "storage" and st["token"] == 1 and st["rejected"] == 1
    assert st["recent"][-1] == ["c1", 0, False, "c1-stale", 1]


def test_without_fencing_the_stale_write_is_told_accepted():
    _, words, _ = told_run("zk_fencing_off")
    assert any(s.startswith("st accepted c1's write 'c1-stale' with token 0 although") for _, s in words)


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
