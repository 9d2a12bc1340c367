"""Chubby's adapter (app/protocols/chubby.py): pills by what they do, node summaries by kind, and
the lessons told in words, from real runs of the lesson scenarios."""

from __future__ import annotations

from functools import partial

from app.protocols import get_adapter
from app.settings import Settings
from engine.scenario import parse_scenario
from engine.sim import Simulation

from .lesson_runs import SCENARIOS, told_run

A = get_adapter("chubby")
told_run = partial(told_run, A)


def test_every_message_of_a_failover_gets_a_pill_of_its_kind():
    _, _, pills = told_run("chubby_jeopardy")
    assert "other" not in pills, pills["other"]
    assert {"p1", "p2", "lease", "session", "keepalive", "lock"} <= set(pills)
    assert "Prepare 1.n1" in pills["p1"] and any(p.startswith("Nack: leased ") for p in pills["p1"])
    assert "Accept s4 epoch (n5)" in pills["p2"] and "Accept s3 acquire c1" in pills["p2"]
    assert "granted gen 2" in pills["lock"] and "KeepAlive c1.1" in pills["keepalive"]


def test_the_lock_delay_lesson_is_told_in_order_with_its_numbers():
    sim, words, pills = told_run("chubby_lock_delay")
    text = [s for _, s in words]
    at = {s: t for t, s in words}
    jeop = next(s for s in text if s.startswith("c1's session c1.1 is in jeopardy: its local lease ran out"))
    exp = "the master expired c1's session c1.1: it did not release the lock, so nobody may take it for the lock-delay (1 s, until 2759 ms)"
    grant = next(s for s in text if s.startswith("c2 now holds the lock (generation 2)"))
    stale = "st REJECTED c1's write 'c1-stale': generation 1 is older than 2 (its sequencer is stale)"
    lost = "c1's grace period ended after 2 s in jeopardy: it takes its session c1.1 as lost, and the lock with it; it opens a new session"
    assert at[jeop] < at[exp] < 2759.389 < at[grant] < at[stale] < at[lost]
    assert text.count(exp) == 1  # every replica applies the expiry; told once
    assert "\u2717 REJECTED" in pills["store-bad"] and "write seq lock:ex:1" in pills["store"]
    st = A.node(sim.views()["st"], True, 0)
    assert st["kind"] == "storage" and st["token"] == 2 and st["rejected"] == 1


def test_without_lock_delay_the_lock_is_told_free_at_once():
    _, words, _ = told_run("chubby_no_lock_delay")
    assert any(s.startswith("the master expired c1's session c1.1: its lock is free at once") for _, s in words)


def test_a_failover_is_told_and_the_sessions_saved_within_the_grace_period():
    _, words, _ = told_run("chubby_jeopardy")
    text = [s for _, s in words]
    assert text.count("n5 is master of epoch 2: Multi-Paxos chose its epoch and a majority granted it the master lease; it answers the clients") == 1
    assert any(s.startswith("n2 restarted with the log on disk; it has forgotten whom it promised") for s in text)
    assert "c1's session c1.1 is saved after 1.85 s in jeopardy: the master n5 answered its KeepAlive within the grace period" in text


def test_node_summaries_carry_the_lock_table_the_leases_and_the_jeopardy():
    sim, _, _ = told_run("chubby_lock_delay", 2000)
    v = sim.views()
    n1 = A.node(v["n1"], False, 0)
    assert n1["kind"] == "server" and n1["role"] == "master" and n1["epoch"] == 1
    assert 2000 < n1["lease_end"] <= 2400 and n1["promise_to"] == "n1"
    assert n1["locks"] == [["/ls/cell/lock", None, None, 1, 2759.389, ["c2"]]]
    assert n1["sessions"] == ["c2.1"] and n1["held"] == ["c2.1"]
    c1 = A.node(v["c1"], False, 0)
    assert c1["kind"] == "client" and c1["session_state"] == "jeopardy" and c1["role"] == "holder"
    assert c1["local_end"] == 1249.389 and c1["grace_end"] == 3249.389 and c1["token"] == 1
    assert c1["sequencer"] == ["/ls/cell/lock", "exclusive", 1]
    c2 = A.node(v["c2"], False, 0)
    assert c2["session_state"] == "safe" and c2["grace_end"] is None and c2["local_end"] > 2000


def test_the_live_cell_is_five_replicas_and_three_clients_and_the_hello_has_the_timings():
    sc = parse_scenario(A.default_scenario(Settings.from_env({}), 7))
    assert sc.protocol == "chubby" and sc.nodes == 5 and sc.config.clients == 3 and sc.config.auto
    x = A.hello(sc)
    assert x["servers"] == ["n1", "n2", "n3", "n4", "n5"] and x["clients"] == ["c1", "c2", "c3"]
    assert x["storage"] == ["st"] and x["grace_ms"] == 2000.0 and x["lock_delay_ms"] == 1000.0
    sim = Simulation(sc)
    sim.run_until(3000)
    assert any(v.get("role") == "master" for v in sim.views().values())


def test_compare_variants_switch_lock_delay_and_the_grace_period():
    sc = parse_scenario((SCENARIOS / "chubby_no_lock_delay.json").read_bytes())
    var = A.compare_variants(sc.config)
    assert var["lock-delay"] == {"mutations": ()}
    assert var["no-lock-delay"] == {"mutations": ("no_lock_delay",)}
    assert var["short-grace"] == {"grace_period_ms": 600.0}


def test_user_actions_in_words():
    assert A.fault_words({"do": "acquire", "node": "c2"}) == "asked c2 to take the lock"
    assert A.fault_words({"do": "close", "node": "c1"}) == "asked c1 to close its session"
    assert A.fault_words({"do": "crash", "node": "n1"}) == "crashed n1"


def test_the_failover_lessons_link_to_each_other_across_protocols(make_client):
    c = make_client(scenarios_dir=SCENARIOS)
    frag = c.get("/fragments/lesson", params={"scenario": "chubby_failover"}).text
    assert 'href="/?protocol=zk&amp;scenario=zk_failover"' in frag and "Open ZooKeeper: leader failover" in frag
    back = c.get("/fragments/lesson", params={"scenario": "zk_failover"}).text
    assert 'href="/?protocol=chubby&amp;scenario=chubby_failover"' in back
    # A lesson naming none links to none.
    assert "see-also" not in c.get("/fragments/lesson", params={"scenario": "chubby_jeopardy"}).text


def test_a_picture_rebuilt_mid_jeopardy_still_tells_how_long_it_lasted():
    """A rewind or a reattach rebuilds what the page was told from the views (`told`): the grace
    period's end is still told with the time spent in jeopardy (from the client's local lease)."""
    import json
    from pathlib import Path

    from app.protocols import get_adapter
    from engine.scenario import parse_scenario
    from engine.sim import Simulation

    root = Path(__file__).resolve().parents[2]
    sc = parse_scenario(json.loads((root / "scenarios" / "chubby_lock_delay.json").read_text()))
    adapter = get_adapter("chubby")
    sim = Simulation(sc)
    sim.run_until(2000)  # c1 is in jeopardy (from 1.249 s)
    told = {nid: adapter.told(v) for nid, v in sim.views().items()}
    recs: list[dict] = []
    sim.subscribe(recs.append)
    sim.run_until(3400)
    words = [w for w in (adapter.describe(r, told) for r in recs) if w]
    assert any(w.startswith("c1's grace period ended after 2 s in jeopardy") for w in words), words


def test_a_replay_that_folds_only_state_records_still_tells_how_long_the_jeopardy_lasted():
    """A seek's replay folds only the `state` records into what was told (app/session/replay.py),
    not the session record saying the jeopardy began: the grace period's end, told after it, still
    says how long the jeopardy lasted (its start taken from the client's state record)."""
    import json
    from pathlib import Path

    root = Path(__file__).resolve().parents[2]
    sc = parse_scenario(json.loads((root / "scenarios" / "chubby_lock_delay.json").read_text()))
    sim = Simulation(sc)
    sim.run_until(1000)  # before the jeopardy (from 1.249 s)
    told = {nid: A.told(v) for nid, v in sim.views().items()}
    recs: list[dict] = []
    sim.subscribe(recs.append)
    sim.run_until(2000)  # the replay: into the jeopardy, state records only
    for r in recs:
        if r["type"] == "state":
            A.describe(r, told)
    assert any(r["type"] == "session" and r["event"] == "jeopardy" for r in recs)
    recs.clear()
    sim.run_until(3400)  # live again
    words = [w for w in (A.describe(r, told) for r in recs) if w]
    assert any(w.startswith("c1's grace period ended after 2 s in jeopardy") for w in words), words
