"""The client API as actions (engine/protocols/zk/actions.py): create, delete, set, get,
getChildren and exists, each answered by an `op` record with ZooKeeper's error names; one-time
watches; a stale read from a lagging follower against a read after sync; closeSession; and the
config's initial tree."""

from __future__ import annotations

import pytest

from engine.scenario import ScenarioError, parse_action, parse_scenario

from .harness import run, scenario

# c1 and c2 on two servers, nothing automatic: every request is the actions'.
BASE = {"clients": 2, "auto": False, "home": {"c1": "n1", "c2": "n2"}}


def ops_run(actions, duration_ms=2500, config=None, seed=1, until_ms=None):
    d = scenario(seed=seed, duration_ms=duration_ms, config={**BASE, **(config or {})},
                 actions=[{"at": 300 + 100 * i, **a} for i, a in enumerate(actions)])
    return run(d, until_ms=until_ms)


def of(recs, typ, **match):
    return [r for r in recs if r["type"] == typ and all(r.get(k) == v for k, v in match.items())]


def answers(recs):
    """(client, op, ok or its error) of each `op` record, in order."""
    return [(r["client"], r["op"], True if r["ok"] else r["err"]) for r in of(recs, "op")]


def test_create_then_each_create_error():
    sim, recs = ops_run([
        {"do": "create", "node": "c1", "path": "/data", "data": "a"},
        {"do": "create", "node": "c2", "path": "/data", "data": "b"},  # there already
        {"do": "create", "node": "c1", "path": "/nope/x"},  # no parent
        {"do": "create", "node": "c1", "path": "/e", "ephemeral": True},
        {"do": "create", "node": "c1", "path": "/e/child"},  # under an ephemeral
        {"do": "create", "node": "c2", "path": "/data/item-", "sequential": True},
        {"do": "create", "node": "c2", "path": "/data/item-", "sequential": True},
    ])
    assert answers(recs) == [("c1", "create", True), ("c2", "create", "NodeExists"),
                             ("c1", "create", "NoNode"), ("c1", "create", True),
                             ("c1", "create", "NoChildrenForEphemerals"),
                             ("c2", "create", True), ("c2", "create", True)]
    made = [r["created"] for r in of(recs, "op", ok=True)]
    assert made == ["/data", "/e", "/data/item-0000000000", "/data/item-0000000001"]
    tree = sim.nodes["n3"].tree
    assert tree.get("/data").data == "a" and tree.get("/e").ephemeral_owner == sim.nodes["c1"].session
    assert tree.children("/data") == ["item-0000000000", "item-0000000001"]
    assert sim.violations == []


def test_set_and_delete_check_the_version():
    sim, recs = ops_run([
        {"do": "create", "node": "c1", "path": "/data", "data": "a"},
        {"do": "set", "node": "c1", "path": "/data", "data": "b", "version": 0},
        {"do": "set", "node": "c2", "path": "/data", "data": "c", "version": 0},  # stale version
        {"do": "set", "node": "c2", "path": "/data", "data": "d"},  # -1: any version
        {"do": "set", "node": "c2", "path": "/missing", "data": "d"},
        {"do": "create", "node": "c1", "path": "/data/kid"},
        {"do": "delete", "node": "c1", "path": "/data", "version": 2},  # it has a child
        {"do": "delete", "node": "c1", "path": "/data/kid", "version": 3},  # its version is 0
        {"do": "delete", "node": "c1", "path": "/data/kid", "version": 0},
        {"do": "delete", "node": "c1", "path": "/data/kid"},  # gone
        {"do": "delete", "node": "c2", "path": "/data", "version": 2},
    ], duration_ms=2000)
    assert answers(recs) == [("c1", "create", True), ("c1", "set", True), ("c2", "set", "BadVersion"),
                             ("c2", "set", True), ("c2", "set", "NoNode"), ("c1", "create", True),
                             ("c1", "delete", "NotEmpty"), ("c1", "delete", "BadVersion"),
                             ("c1", "delete", True), ("c1", "delete", "NoNode"), ("c2", "delete", True)]
    sets = of(recs, "op", op="set", ok=True)
    assert [(r["asked_version"], r["version"]) for r in sets] == [(0, 1), (-1, 2)]
    assert sim.nodes["n1"].tree.get("/data") is None and sim.violations == []


def test_reads_answer_from_the_client_s_server():
    sim, recs = ops_run([
        {"do": "get", "node": "c1", "path": "/data"},
        {"do": "exists", "node": "c1", "path": "/data"},
        {"do": "create", "node": "c2", "path": "/data", "data": "x"},
        {"do": "create", "node": "c2", "path": "/data/k"},
        {"do": "get", "node": "c1", "path": "/data", "sync": True},
        {"do": "exists", "node": "c1", "path": "/data"},
        {"do": "get_children", "node": "c1", "path": "/data"},
        {"do": "get_children", "node": "c1", "path": "/none"},
    ])
    got = of(recs, "op", client="c1")
    assert [(r["op"], r["ok"], r.get("err")) for r in got] == [
        ("get", False, "NoNode"), ("exists", True, None), ("get", True, None), ("exists", True, None),
        ("get_children", True, None), ("get_children", False, "NoNode")]
    assert got[1]["exists"] is False and got[3]["exists"] is True
    assert (got[2]["data"], got[2]["version"], got[2]["synced"]) == ("x", 0, True)
    assert got[4]["children"] == ["k"] and {r["server"] for r in got} == {"n1"}
    assert sim.violations == []


def test_a_data_watch_fires_once_for_two_changes_and_is_the_user_s():
    sim, recs = ops_run([
        {"do": "create", "node": "c1", "path": "/data", "data": "a"},
        {"do": "get", "node": "c2", "path": "/data", "watch": True},
        {"do": "set", "node": "c1", "path": "/data", "data": "b"},
        {"do": "set", "node": "c1", "path": "/data", "data": "c"},
        {"do": "exists", "node": "c2", "path": "/later", "watch": True},
        {"do": "create", "node": "c1", "path": "/later"},
        {"do": "get_children", "node": "c2", "path": "/later", "watch": True},
        {"do": "delete", "node": "c1", "path": "/later"},
    ])
    s2 = sim.nodes["c2"].session
    fires = [(r["path"], r["kind"], r["zxid"]) for r in of(recs, "watch", event="fire", session=s2)]
    first_set = of(recs, "op", op="set", ok=True)[0]["zxid"]
    assert fires[0] == ("/data", "data", first_set)  # the first set, not the second
    assert [f[:2] for f in fires] == [("/data", "data"), ("/later", "data"), ("/later", "children")]
    assert all(r.get("user") for r in of(recs, "watch", session=s2))
    assert sim.nodes["c2"].woken == 0  # not the recipe's: nothing woke it
    assert sim.nodes["n2"].watches.get(("/data", "data")) in (None, {})
    assert sim.violations == []


def test_a_user_watch_on_the_lock_queue_is_not_a_herd():
    # c3 watches the holder's node by hand while c2 waits on it as the recipe says: the release
    # wakes both, but only one is the recipe's (No herd effect stays quiet).
    d = scenario(duration_ms=1500, config={**BASE, "clients": 3},
                 actions=[{"at": 300, "do": "acquire", "node": "c1"},
                          {"at": 400, "do": "acquire", "node": "c2"},
                          {"at": 500, "do": "exists", "node": "c3", "path": "/lock/c1-1-lock-0000000000", "watch": True},
                          {"at": 700, "do": "release", "node": "c1"}])
    sim, recs = run(d)
    fired = of(recs, "watch", event="fire", path="/lock/c1-1-lock-0000000000")  # (each on its server)
    assert len({r["session"] for r in fired}) == 2 and sum(bool(r.get("user")) for r in fired) == 1
    assert sim.nodes["c2"].phase == "held" and sim.violations == []


def test_a_stale_read_from_a_lagging_follower_and_a_read_after_sync():
    # zk_stale_read's ensemble: n3 leads, c1 is on n1, whose link from the leader is slow (150 ms).
    d = scenario(seed=1, duration_ms=1500,
                 config={"clients": 2, "auto": False, "home": {"c1": "n1", "c2": "n3"}},
                 actions=[{"at": 200, "do": "set_link", "from": "n3", "to": "n1", "both": False,
                           "latency_ms": [150, 150]},
                          {"at": 600, "do": "create", "node": "c2", "path": "/data", "data": "new"},
                          {"at": 700, "do": "get", "node": "c1", "path": "/data"},
                          {"at": 720, "do": "get", "node": "c1", "path": "/data", "sync": True}])
    sim, recs = run(d)
    made = of(recs, "op", client="c2")[0]
    stale, fresh = of(recs, "op", client="c1")
    assert made["ok"] and made["t"] < stale["t"]
    assert (stale["server"], stale["ok"], stale["err"]) == ("n1", False, "NoNode")  # n1 is behind
    assert stale["zxid"] < made["zxid"]
    assert fresh["ok"] and fresh["data"] == "new" and fresh["synced"] and fresh["zxid"] >= made["zxid"]
    assert sim.violations == []


def test_a_write_in_flight_when_the_connection_goes_is_connection_loss():
    d = scenario(duration_ms=3000, config={**BASE},
                 actions=[{"at": 500, "do": "create", "node": "c1", "path": "/data"},
                          {"at": 500, "do": "partition", "groups": [["c1"]]},
                          {"at": 1200, "do": "heal"},
                          {"at": 1300, "do": "get", "node": "c1", "path": "/data"},
                          {"at": 1500, "do": "get", "node": "c1", "path": "/data"}])
    sim, recs = run(d)
    lost, dead, after = of(recs, "op", client="c1")
    # The get asked at 1300, before c1 hears (at about 1312) that its session expired in the
    # partition, fails with it: the handle is dead. The one at 1500 runs on the new session.
    assert (dead["op"], dead["err"]) == ("get", "SessionExpired")
    assert of(recs, "session", client="c1", event="expire")[0]["t"] <= dead["t"]
    assert (lost["op"], lost["ok"], lost["err"]) == ("create", False, "ConnectionLoss")
    assert of(recs, "session", client="c1", event="disconnect")[0]["t"] <= lost["t"]
    assert after["op"] == "get" and after["err"] == "NoNode"  # the create never reached a server
    assert sim.violations == []


def test_closing_the_holder_s_session_hands_the_lock_on_and_the_client_goes_quiet():
    d = scenario(
        duration_ms=3000, config={**BASE, "clients": 3},
        actions=[{"at": 300, "do": "acquire", "node": "c1"},
                 {"at": 400, "do": "acquire", "node": "c2"},
                 {"at": 500, "do": "acquire", "node": "c3"},
                 {"at": 800, "do": "close", "node": "c1"},
                 {"at": 2400, "do": "acquire", "node": "c1"}])
    sim, recs = run(d, messages=True)
    old = of(recs, "session", client="c1", event="open")[0]["session"]
    close = [r for r in of(recs, "txn", op="session_close", node="n1")]
    assert len(close) == 1 and close[0]["session"] == old
    assert close[0]["deleted"] == ["/lock/c1-1-lock-0000000000"]  # with its ephemeral, in one txn
    told = of(recs, "session", client="c1", event="close")
    assert len(told) == 1 and told[0]["t"] >= close[0]["t"] - 50 and told[0]["session"] == old
    # The next waiter's watch fired with the close, and it holds the lock; c3 still waits.
    fire = of(recs, "watch", event="fire", path="/lock/c1-1-lock-0000000000")
    assert fire and {tuple(r["zxid"]) for r in fire} == {tuple(close[0]["zxid"])}
    holds = [r for r in of(recs, "state", node="c2") if r["holds_lock"]]
    assert holds and holds[0]["t"] > close[0]["t"] and holds[0]["token"] == 1
    assert not any(r["holds_lock"] for r in of(recs, "state", node="c3"))
    # Closed: c1 sends nothing (no ping, no reconnect) until it is asked for the lock again, and
    # then it opens a new session.
    quiet = [r for r in of(recs, "send") if r["from"] == "c1" and told[0]["t"] < r["t"] < 2400]
    assert quiet == []
    opens = of(recs, "session", client="c1", event="open")
    assert len(opens) == 2 and opens[1]["t"] > 2400 and opens[1]["session"] != old
    assert not any(r["type"] == "session" and r["client"] == "c1" and r["event"] == "expire" for r in recs)
    assert sim.nodes["c1"].session == opens[1]["session"] and sim.violations == []


def test_close_then_a_call_opens_a_new_session_and_a_closed_session_has_no_ephemerals():
    sim, recs = ops_run([
        {"do": "create", "node": "c1", "path": "/e", "ephemeral": True},
        {"do": "get", "node": "c2", "path": "/e", "watch": True},
        {"do": "close", "node": "c1"},
        {"do": "close", "node": "c1"},  # closed already: nothing more
        {"do": "exists", "node": "c1", "path": "/e"},
    ])
    closes = of(recs, "txn", op="session_close", node="n2")
    assert len(closes) == 1 and closes[0]["deleted"] == ["/e"]
    assert [r["path"] for r in of(recs, "watch", event="fire", node="n2")] == ["/e"]
    last = of(recs, "op", client="c1")[-1]
    assert last["op"] == "exists" and last["exists"] is False
    assert len(of(recs, "session", client="c1", event="open")) == 2
    assert sim.violations == []


@pytest.mark.parametrize("action, needle", [
    ({"do": "create", "node": "c1", "path": "data"}, "action.path: 'data' is not a znode path"),
    ({"do": "create", "node": "c1", "path": "/data/"}, "action.path"),
    ({"do": "create", "node": "c1"}, "action.path: Field required"),
    ({"do": "set", "node": "c1", "path": "/data", "version": -2}, "action.version"),
    ({"do": "set", "node": "c1", "path": "/data", "version": "1"}, "action.version"),
    ({"do": "get", "node": "c1", "path": "/data", "watch": "yes"}, "action.watch"),
    ({"do": "delete", "node": "n1", "path": "/data"}, "action.node: n1 is not a client process"),
    ({"do": "create", "node": "c1", "path": "/d", "data": "x" * 33}, "action.data"),
    ({"do": "close", "node": "c1", "path": "/d"}, "action.path: unknown field"),
    # A sequential node's name with its suffix must stay within the 40 characters get, set and
    # delete take (a 31-character name made a 41-character node no call could name).
    ({"do": "create", "node": "c1", "path": "/" + "q" * 31, "sequential": True},
     "action: path: a sequential node's name takes a 10-digit suffix, so 'q{31}' may have at most 30"),
    ({"do": "get", "node": "c1", "path": "/" + "q" * 41}, "action.path: '/q{41}' is not a znode path"),
])
def test_bad_calls_are_refused_naming_the_field(action, needle):
    ids = ["n1", "n2", "n3", "c1", "c2", "st"]
    with pytest.raises(ScenarioError, match=needle.replace("(", r"\(")):
        parse_action(action, ids, protocol="zk")


def test_name_lengths_at_the_limits_are_taken():
    ids = ["n1", "n2", "n3", "c1", "c2", "st"]
    parse_action({"do": "create", "node": "c1", "path": "/" + "q" * 30, "sequential": True}, ids, protocol="zk")
    parse_action({"do": "create", "node": "c1", "path": "/" + "q" * 40}, ids, protocol="zk")
    parse_action({"do": "get", "node": "c1", "path": "/" + "q" * 40}, ids, protocol="zk")
    parse_scenario(scenario(config={"initial_tree": {f"/n{i}": {} for i in range(64)}}))


def test_the_initial_tree_gives_the_lock_parent_a_counter():
    d = scenario(duration_ms=1200, config={**BASE, "initial_tree": {"/lock": {"cversion": 33},
                                                                    "/app": {"data": "cfg"},
                                                                    "/app/x": {}}},
                 actions=[{"at": 300, "do": "acquire", "node": "c1"},
                          {"at": 400, "do": "acquire", "node": "c2"},
                          {"at": 500, "do": "get", "node": "c2", "path": "/app"},
                          {"at": 600, "do": "crash", "node": "n3"},  # restarted, it starts from it
                          {"at": 700, "do": "restart", "node": "n3"}])
    sim, recs = run(d)
    assert [r["path"] for r in of(recs, "txn", op="create", node="n1")] == [
        "/lock/c1-1-lock-0000000033", "/lock/c2-1-lock-0000000034"]
    assert sim.nodes["c1"].token == 33
    assert of(recs, "op", client="c2")[0]["data"] == "cfg"
    assert sim.nodes["n3"].tree.children("/app") == ["x"] and sim.violations == []
    for bad, needle in (({"/a/b": {}}, "config.initial_tree: /a/b: its parent /a is neither / nor in"),
                        ({"lock": {}}, "config.initial_tree"),
                        ({"/lock": {"cversion": -1}}, "config.initial_tree./lock.cversion"),
                        ({"/lock": {"seq": 3}}, "config.initial_tree./lock.seq: unknown field"),
                        # (a share link's megabyte would hold 15,000 of them, too big a snapshot)
                        ({f"/n{i}": {} for i in range(65)}, "config.initial_tree: .*65 znodes: at most 64")):
        with pytest.raises(ScenarioError, match=needle):
            parse_scenario(scenario(config={"initial_tree": bad}))


def random_calls(seed: int) -> list[dict]:
    """25 calls of the client API (and recipe steps, and closes) at random moments, by c1..c3."""
    import random

    rnd = random.Random(seed)
    out = []
    for _ in range(25):
        do = rnd.choice(["create", "set", "delete", "get", "get_children", "exists", "close",
                         "acquire", "release"])
        a = {"at": round(rnd.uniform(200, 3800), 1), "do": do, "node": f"c{rnd.randint(1, 3)}"}
        if do not in ("close", "acquire", "release"):
            a["path"] = rnd.choice(["/data", "/data/x", "/lock", "/e"])
        if do == "create":
            a.update(ephemeral=rnd.random() < 0.5, sequential=rnd.random() < 0.3)
        elif do in ("set", "delete"):
            a["version"] = rnd.choice([-1, 0, 1])
        elif do in ("get", "get_children", "exists"):
            a.update(watch=rnd.random() < 0.6, sync=rnd.random() < 0.3)
        out.append(a)
    return sorted(out, key=lambda a: a["at"])


def test_random_calls_under_the_nemesis_break_nothing():
    # The lock recipe's clients (auto) with the user's calls, closes and releases of waiters
    # among them, under crashes, pauses, partitions, cuts and loss: every checker stays quiet.
    from .harness import nemesis_scenario

    told = closed = 0
    for seed in range(24):
        d = nemesis_scenario(seed, 3 if seed % 2 else 5, 4000, 3000)
        d["actions"] = random_calls(seed)
        sim, recs = run(d)
        assert sim.violations == [], (seed, sim.violations[:1])
        told += len(of(recs, "op"))
        closed += len(of(recs, "session", event="close"))
    assert told > 200 and closed > 20, (told, closed)


def test_a_close_that_meets_the_expiry_leaves_the_client_closed():
    # c1's closeSession is lost in a partition; the leader expires the silent session meanwhile.
    # When the partition heals the server tells c1 its session expired: there is nothing left
    # to close, and c1 stays closed (no new session) until it is asked for something.
    d = scenario(duration_ms=3000, config={**BASE},
                 actions=[{"at": 300, "do": "acquire", "node": "c1"},
                          {"at": 600, "do": "partition", "groups": [["c1"]]},
                          {"at": 650, "do": "close", "node": "c1"},
                          {"at": 1600, "do": "heal"}])
    sim, recs = run(d)
    events = [r["event"] for r in of(recs, "session", client="c1")]
    assert events == ["open", "disconnect", "expire"], events
    assert of(recs, "txn", op="session_expire", node="n1") and not of(recs, "txn", op="session_close")
    assert sim.nodes["c1"].closed and sim.nodes["c1"].session is None and sim.nodes["c1"].ops == []
    assert sim.violations == []


def test_a_close_refused_because_the_session_expired_leaves_the_client_closed():
    # The leader n3 has already proposed c1's expiry when c1's close gets there (c1 partitioned
    # 600-1100, n3's links slow): the close is refused with SessionExpired. The handle is dead:
    # c1 ends closed, no new session (it used to drop the close and open s1.5).
    d = scenario(duration_ms=2500, config={"clients": 2, "auto": False, "home": {"c1": "n3", "c2": "n2"}},
                 actions=[{"at": 300, "do": "acquire", "node": "c1"},
                          {"at": 400, "do": "set_link", "from": "n3", "to": "n1", "latency_ms": [120, 120]},
                          {"at": 400, "do": "set_link", "from": "n3", "to": "n2", "latency_ms": [120, 120]},
                          {"at": 600, "do": "partition", "groups": [["c1"]]},
                          {"at": 1099, "do": "close", "node": "c1"},
                          {"at": 1100, "do": "heal"}])
    sim, recs = run(d)
    events = [(r["event"], r["session"]) for r in of(recs, "session", client="c1")]
    assert events[-1] == ("expire", "s1.1") and ("open", "s1.1") == events[0], events
    assert [r["session"] for r in of(recs, "session", client="c1", event="open")] == ["s1.1"]
    refused = of(recs, "op", client="c1", op="close")
    assert len(refused) == 1 and refused[0]["err"] == "SessionExpired"
    c1 = sim.nodes["c1"]
    assert c1.closed and c1.session is None and c1.ops == []
    assert sim.violations == []


def test_calls_queued_before_a_close_fail_with_session_expired():
    # A get in flight when c1 is cut off, a create and a close queued behind it; the session
    # expires meanwhile. On reconnect the handle is dead: the get and the create fail with
    # SessionExpired (they used to run on a new session, the create's /x owned by it), the close
    # is done, and c1 ends closed.
    d = scenario(duration_ms=3000, config={**BASE},
                 actions=[{"at": 300, "do": "acquire", "node": "c1"},
                          {"at": 600, "do": "partition", "groups": [["c1"]]},
                          {"at": 640, "do": "get", "node": "c1", "path": "/a"},
                          {"at": 645, "do": "create", "node": "c1", "path": "/x", "ephemeral": True},
                          {"at": 650, "do": "close", "node": "c1"},
                          {"at": 1600, "do": "heal"},
                          {"at": 2000, "do": "get", "node": "c2", "path": "/x"}])
    sim, recs = run(d)
    assert [r["event"] for r in of(recs, "session", client="c1")] == ["open", "disconnect", "expire"]
    assert [(r["op"], r["err"]) for r in of(recs, "op", client="c1")] == [
        ("get", "SessionExpired"), ("create", "SessionExpired")]
    assert not of(recs, "txn", path="/x")
    assert of(recs, "op", client="c2", op="get")[0]["err"] == "NoNode"
    c1 = sim.nodes["c1"]
    assert c1.closed and c1.session is None and c1.ops == []
    assert sim.violations == []


def test_a_call_after_the_close_is_for_the_next_session():
    # The same, with a set asked after the close: the calls before it fail, the close is done,
    # and the set opens a new session (the user's next call, as after any close).
    d = scenario(duration_ms=3500, config={**BASE},
                 actions=[{"at": 300, "do": "acquire", "node": "c1"},
                          {"at": 600, "do": "partition", "groups": [["c1"]]},
                          {"at": 640, "do": "get", "node": "c1", "path": "/a"},
                          {"at": 645, "do": "create", "node": "c1", "path": "/x"},
                          {"at": 650, "do": "close", "node": "c1"},
                          {"at": 655, "do": "create", "node": "c1", "path": "/y"},
                          {"at": 1600, "do": "heal"}])
    sim, recs = run(d)
    opened = [r["session"] for r in of(recs, "session", client="c1", event="open")]
    assert len(opened) == 2, opened
    ops = [(r["op"], r["path"], r.get("err")) for r in of(recs, "op", client="c1")]
    assert ops == [("get", "/a", "SessionExpired"), ("create", "/x", "SessionExpired"),
                   ("create", "/y", None)], ops
    assert sim.violations == []


@pytest.mark.parametrize("first", ["create", "close", "acquire"])
def test_a_request_lost_on_a_live_connection_does_not_wedge_the_client(first):
    # c1 is cut off for 100 ms (less than its read timeout: the connection lives on, pings and
    # pongs resume) and the request sent at 699 is lost. On TCP that would stall the connection
    # until the read timeout broke it; so here: the create fails with ConnectionLoss, the close
    # and the recipe's create are sent again, and the set asked at 1000 is answered (it used to
    # wait behind the lost request to the end).
    a = {"at": 699, "do": first, "node": "c1", **({"path": "/data"} if first == "create" else {})}
    d = scenario(duration_ms=4000, config={**BASE},
                 actions=[{"at": 300, "do": "get", "node": "c1", "path": "/x"},
                          {"at": 600, "do": "partition", "groups": [["c1"]]}, a,
                          {"at": 700, "do": "heal"},
                          {"at": 1000, "do": "set", "node": "c1", "path": "/x", "data": "z"}])
    sim, recs = run(d)
    c1 = sim.nodes["c1"]
    ops = [(r["op"], r.get("err")) for r in of(recs, "op", client="c1")]
    assert ops[-1] == ("set", "NoNode"), ops
    assert c1.pending is None and c1.ops == []
    events = [r["event"] for r in of(recs, "session", client="c1")]
    assert events[:3] == ["open", "disconnect", "reconnect"], events
    if first == "create":
        assert ("create", "ConnectionLoss") in ops
    elif first == "close":
        assert events[3:] == ["close", "open"]  # closed, then the set's new session
    else:
        assert c1.phase == "held" and of(recs, "txn", op="create", node="n1")
    assert sim.violations == []


def _moved_watch(kind, path, change_at, change):
    """c1 sets a watch of its own at its server (seed 2: n1), which crashes at 600; c1 reconnects
    to n4 at about 813 and re-registers the watch there (SetWatches)."""
    cfg = {"clients": 2, "auto": False, "home": {"c2": "n5"}}
    d = scenario(seed=2, nodes=5, duration_ms=2500, config=cfg,
                 actions=[{"at": 400, "do": "create", "node": "c2", "path": "/data"},
                          {"at": 500, "do": kind, "node": "c1", "path": path, "watch": True},
                          {"at": 600, "do": "crash", "node": "n1"},
                          {"at": change_at, **change}])
    sim, recs = run(d)
    s1 = sim.nodes["c1"].session
    assert [r["server"] for r in of(recs, "session", client="c1")] == ["n1", "n1", "n4"]
    return sim, recs, of(recs, "watch", session=s1)


def test_a_watch_follows_its_client_to_its_new_server():
    # Nothing changed while c1 moved: n4 registers the watch, and c2's set at 1500 fires it
    # there (it used to stay on the crashed n1 and never fire).
    sim, recs, w = _moved_watch("get", "/data", 1500, {"do": "set", "node": "c2", "path": "/data", "data": "b"})
    set_z = of(recs, "txn", op="set", node="n4")[0]["zxid"]
    assert [(r["node"], r["event"], r.get("reconnect")) for r in w] == [
        ("n1", "set", None), ("n4", "set", True), ("n4", "fire", None)]
    assert w[-1]["zxid"] == set_z and w[-1]["t"] > 1500
    assert sim.nodes["c1"].watches == {}
    assert sim.violations == []


@pytest.mark.parametrize("kind,path,change", [
    ("get", "/data", {"do": "set", "node": "c2", "path": "/data", "data": "b"}),
    ("get", "/data", {"do": "delete", "node": "c2", "path": "/data"}),
    ("get_children", "/data", {"do": "create", "node": "c2", "path": "/data/k"}),
    ("exists", "/nope", {"do": "create", "node": "c2", "path": "/nope"})])
def test_a_watch_whose_node_changed_while_its_client_moved_fires_on_reconnect(kind, path, change):
    # c2 changes the watched node at 650, while c1 is cut off from its crashed server: when c1
    # re-registers the watch with n4 (its last zxid is from before the change), n4 fires it at once.
    sim, recs, w = _moved_watch(kind, path, 650, change)
    txn = [r for r in of(recs, "txn", node="n4") if r["op"] not in ("session_open",)][-1]
    assert txn["t"] < 800
    assert [(r["node"], r["event"], r.get("reconnect")) for r in w] == [
        ("n1", "set", None), ("n4", "set", True), ("n4", "fire", True)]
    fire = w[-1]
    assert fire["t"] < 900 and fire["kind"] == ("children" if kind == "get_children" else "data")
    if change["do"] != "delete":
        assert fire["zxid"] == txn["zxid"]  # the change's own zxid (Stat.mzxid / pzxid)
    assert sim.nodes["c1"].watches == {}
    assert sim.violations == []


def test_a_read_after_sync_lost_with_the_connection_is_asked_again_with_its_sync():
    # c1's sync (for a get with sync) is lost as c1 is cut off; after reconnecting it sends the
    # sync again before the get (it used to send the get alone, its op record still `synced`).
    d = scenario(duration_ms=2500, config={**BASE},
                 actions=[{"at": 500, "do": "get", "node": "c1", "path": "/x", "sync": True},
                          {"at": 500, "do": "partition", "groups": [["c1"]]},
                          {"at": 700, "do": "heal"}])
    sim, recs = run(d, messages=True)
    sent = [r["msg"]["req"]["op"] for r in recs
            if r["type"] == "send" and r["from"] == "c1" and r["msg"]["kind"] == "Request"]
    assert sent == ["sync", "sync", "get"], sent
    (got,) = of(recs, "op", client="c1")
    assert got["synced"] and got["err"] == "NoNode"
    assert sim.violations == []
