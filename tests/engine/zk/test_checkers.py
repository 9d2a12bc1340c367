"""Each ZooKeeper checker, fed records by hand: quiet on a good history, loud on the bad one."""

from __future__ import annotations

from engine.protocols.zk import checkers as ck

SERVERS = ["n1", "n2", "n3", "c1", "st"]


def feed(cls, recs):
    c = cls(7, SERVERS)
    for i, r in enumerate(recs):
        c.observe({"t": float(i), **r})
    return c.violations


def txn(node, z, op, **kw):
    return {"type": "txn", "node": node, "zxid": list(z), "op": op, **kw}


def st(node, last, **kw):
    return {"type": "state", "node": node, "role": kw.pop("role", "following"), "last_zxid": list(last), **kw}


def test_one_leader_per_epoch():
    lead = lambda n, e: {"type": "state", "node": n, "role": "leading", "phase": "broadcast", "epoch": e}
    assert not feed(ck.OneLeaderPerEpoch, [lead("n1", 1), lead("n2", 2), lead("n2", 2)])
    assert feed(ck.OneLeaderPerEpoch, [lead("n1", 1), lead("n2", 1)])


def test_prefix_consistency():
    a, b = txn("n1", (1, 1), "create", path="/a"), txn("n1", (1, 2), "create", path="/b")
    good = [a, b, {**a, "node": "n2"}, {**b, "node": "n2"},
            st("n2", (1, 2), role="down"), {**a, "node": "n2"}]  # recommits after a restart
    assert not feed(ck.PrefixConsistency, good)
    assert feed(ck.PrefixConsistency, [a, b, {**b, "node": "n2"}])  # n2 skipped 1.1
    assert feed(ck.PrefixConsistency, [a, {**a, "node": "n2", "path": "/x"}])  # another txn at 1.1
    assert feed(ck.PrefixConsistency, [b, {**a, "node": "n1"}])  # zxids going back


def test_integrity():
    a = txn("n1", (1, 1), "create", path="/a")
    assert not feed(ck.Integrity, [st("n1", (1, 1)), st("n2", (1, 1)), a])
    assert feed(ck.Integrity, [st("n1", (1, 1)), st("n2", (1, 0)), a])


def test_local_primary_order():
    w = lambda z, c: txn("n1", z, "set", path="/a", session="s1.1", cxid=c)
    assert not feed(ck.LocalPrimaryOrder, [w((1, 1), 1), w((1, 2), 3)])
    assert feed(ck.LocalPrimaryOrder, [w((1, 1), 3), w((1, 2), 2)])


def test_ephemerals_go_with_their_session():
    opened = txn("n1", (1, 1), "session_open", session="s1.1")
    made = txn("n1", (1, 2), "create", path="/lock/x", ephemeral_owner="s1.1", seq=0)
    assert not feed(ck.EphemeralsGoWithExpiry, [opened, made, txn("n1", (1, 3), "session_expire", session="s1.1", deleted=["/lock/x"])])
    assert feed(ck.EphemeralsGoWithExpiry, [opened, made, txn("n1", (1, 3), "session_expire", session="s1.1", deleted=[])])
    assert feed(ck.EphemeralsGoWithExpiry, [made])  # for a session never opened


def test_sequence_numbers_increase():
    mk = lambda z, s: txn("n1", z, "create", path=f"/lock/g-lock-{s:010d}", seq=s)
    assert not feed(ck.SequenceIncreases, [mk((1, 1), 0), mk((1, 2), 1), mk((1, 3), 5)])
    assert feed(ck.SequenceIncreases, [mk((1, 1), 1), mk((1, 2), 1)])


def test_watches_fire_once_after_a_change():
    w = lambda ev, z, path="/lock/a", kind="data": {"type": "watch", "node": "n1", "session": "s1.2",
                                                    "path": path, "kind": kind, "event": ev, "zxid": list(z)}
    gone = txn("n1", (1, 5), "delete", path="/lock/a")
    other = txn("n1", (1, 5), "delete", path="/lock/b")
    assert not feed(ck.WatchOnce, [w("set", (1, 3)), gone, w("fire", (1, 5))])
    assert not feed(ck.WatchOnce, [w("set", (1, 3), "/lock", "children"), gone, w("fire", (1, 5), "/lock", "children")])
    assert feed(ck.WatchOnce, [w("set", (1, 3)), gone, w("fire", (1, 5)), w("fire", (1, 5))])  # twice
    assert feed(ck.WatchOnce, [w("set", (1, 3)), other, w("fire", (1, 5))])  # path unchanged
    assert feed(ck.WatchOnce, [gone, w("set", (1, 6)), w("fire", (1, 5))])  # before it was set
    # A children watch on a node fires with the node's own delete (and its session's end).
    assert not feed(ck.WatchOnce, [w("set", (1, 3), "/lock/a", "children"), gone, w("fire", (1, 5), "/lock/a", "children")])
    end = txn("n1", (1, 5), "session_close", session="s1.1", deleted=["/lock/a"])
    assert not feed(ck.WatchOnce, [w("set", (1, 3), "/lock/a", "children"), end, w("fire", (1, 5), "/lock/a", "children")])
    assert feed(ck.WatchOnce, [w("set", (1, 3), "/lock/b", "children"), gone, w("fire", (1, 5), "/lock/b", "children")])


def test_fencing_tokens_never_go_back():
    wr = lambda tok, ok=True: {"type": "write", "client": "c1", "token": tok, "accepted": ok, "value": "v"}
    assert not feed(ck.FencingTokens, [wr(1), wr(1), wr(3), wr(2, False)])
    assert feed(ck.FencingTokens, [wr(3), wr(2)])


def test_one_lock_holder_per_state():
    mk = lambda z, s: txn("n1", z, "create", path=f"/lock/c{s}-lock-{s:010d}", seq=s)
    holds = lambda c, s, z: {"type": "state", "node": c, "holds_lock": True,
                             "lock_node": f"/lock/c{s}-lock-{s:010d}", "lock_zxid": list(z)}
    base = [mk((1, 1), 0), mk((1, 2), 1)]
    assert not feed(ck.OneLockHolder, base + [holds("c0", 0, (1, 2)),
                                              txn("n1", (1, 3), "delete", path="/lock/c0-lock-0000000000"),
                                              holds("c1", 1, (1, 3))])
    assert feed(ck.OneLockHolder, base + [holds("c0", 0, (1, 2)), holds("c1", 1, (1, 2))])


def test_no_herd():
    fire = lambda s, z: {"type": "watch", "node": "n1", "session": s, "path": "/lock", "kind": "children",
                         "event": "fire", "zxid": list(z)}
    gone = txn("n1", (1, 5), "delete", path="/lock/a")
    assert not feed(ck.NoHerd, [gone, fire("s1", (1, 5)), {**fire("s1", (1, 5)), "node": "n2"}])
    assert feed(ck.NoHerd, [gone, fire("s1", (1, 5)), fire("s2", (1, 5))])
    # A predecessor watch left from an earlier turn in the queue (s2 released while waiting on
    # a, then queued again behind b) fires with a's delete, but s2 is not a waiter on a: no herd.
    mk = lambda z, name, seq, owner: txn("n1", z, "create", path=f"/lock/{name}", seq=seq, ephemeral_owner=owner)
    dwatch = lambda ev, s, z: {"type": "watch", "node": "n1", "session": s, "path": "/lock/a-0000000000",
                               "kind": "data", "event": ev, "zxid": list(z)}
    dfire = lambda s, z: dwatch("fire", s, z)
    queue = [mk((1, 1), "a-0000000000", 0, "s0"), mk((1, 2), "b-0000000001", 1, "s2"),
             dwatch("set", "s2", (1, 2)),
             txn("n1", (1, 3), "delete", path="/lock/b-0000000001"), mk((1, 4), "c-0000000002", 2, "s3"),
             dwatch("set", "s3", (1, 4)),
             mk((1, 5), "d-0000000003", 3, "s2"), txn("n1", (1, 6), "delete", path="/lock/a-0000000000")]
    assert not feed(ck.NoHerd, queue + [dfire("s3", (1, 6)), dfire("s2", (1, 6))])
    # s3, the node just above a, is a waiter woken by it: with one more woken (a parent watch),
    # it is a herd again.
    assert feed(ck.NoHerd, queue + [dfire("s3", (1, 6)), fire("s5", (1, 6))])
    # Had s2 set its watch on a again in its new turn (a herd through data watches), it counts.
    assert feed(ck.NoHerd, queue[:-1] + [dwatch("set", "s2", (1, 5)), queue[-1],
                                        dfire("s3", (1, 6)), dfire("s2", (1, 6))])
    # A watch the user's own call set (`user`) is not the recipe's: it makes no herd.
    assert not feed(ck.NoHerd, [gone, fire("s1", (1, 5)), {**fire("s2", (1, 5)), "user": True}])


def test_no_herd_of_data_watches():
    """Every waiter watching the holder's node (not its predecessor) is a herd too: s2, s3 and s4
    queue behind s1 and all set a data watch on s1's node; its delete wakes all three."""
    path = lambda i: f"/lock/x-lock-{i:010d}"
    recs = []
    for i, s in enumerate(["s1", "s2", "s3", "s4"]):
        recs.append(txn("n1", (1, i + 1), "create", path=path(i), seq=i, ephemeral_owner=s))
    for i, s in enumerate(["s2", "s3", "s4"]):
        recs.append({"type": "watch", "node": "n1", "session": s, "path": path(0), "kind": "data",
                     "event": "set", "zxid": [1, 4]})
    recs.append(txn("n1", (1, 10), "delete", path=path(0)))
    fires = [{"type": "watch", "node": "n1", "session": s, "path": path(0), "kind": "data",
              "event": "fire", "zxid": [1, 10]} for s in ("s2", "s3", "s4")]
    assert feed(ck.NoHerd, recs + fires)
    # Without the setting seen, a data watch's fire is counted all the same.
    assert feed(ck.NoHerd, [r for r in recs if r["type"] == "txn"] + fires)
    # Only s2 (the waiter just above) watching it: one waiter woken, no herd.
    assert not feed(ck.NoHerd, recs + fires[:1])
