"""Each Chubby checker, fed records by hand: quiet on a good history, loud on the bad one."""

from __future__ import annotations

from engine.protocols.chubby import checkers as ck

SERVERS = ["n1", "n2", "n3", "c1", "c2", "st"]
LOCK = "/ls/cell/lock"


def feed(c, recs):
    for i, r in enumerate(recs):
        c.observe({"t": float(i * 100), **r})
    return c.violations


def txn(node, slot, op, **kw):
    return {"type": "txn", "node": node, "slot": slot, "op": op, "ok": kw.pop("ok", True), **kw}


def acquire(slot, s, gen, node="n1"):
    return txn(node, slot, "acquire", session=s, client=s[:2], lock=LOCK, generation=gen)


def test_one_master_per_epoch():
    m = lambda n, e: {"type": "state", "node": n, "role": "master", "epoch": e}
    assert not feed(ck.OneMasterPerEpoch(1, SERVERS), [m("n1", 1), m("n2", 2), m("n2", 2)])
    v = feed(ck.OneMasterPerEpoch(1, SERVERS), [m("n1", 1), m("n2", 1)])
    assert v and v[0]["detail"] == "n1 and n2 both established as masters of epoch 1"


def test_database_prefix():
    a, b = txn("n1", 0, "epoch", master="n1", epoch=1), acquire(1, "c1.1", 1)
    down = {"type": "state", "node": "n2", "role": "down"}
    assert not feed(ck.DatabasePrefix(1, SERVERS), [a, b, {**a, "node": "n2"}, down, {**a, "node": "n2"}])
    assert feed(ck.DatabasePrefix(1, SERVERS), [a, b, {**b, "node": "n2"}])  # n2 skipped slot 0
    v = feed(ck.DatabasePrefix(1, SERVERS), [a, b, {**a, "node": "n2"}, {**b, "node": "n2", "session": "c2.1"}])
    assert v and "slot 1" in v[0]["detail"]


def holds(c, gen, holds_lock=True):
    return {"type": "state", "node": c, "role": "holder" if holds_lock else "idle",
            "holds_lock": holds_lock, "token": gen, "session_state": "safe"}


def test_one_lock_holder():
    freed = txn("n1", 2, "expire", session="c1.1", at_ms=100.0, delay_until_ms=100.0, freed=[LOCK])
    # A handover: each client holds the generation it was granted, one after the other.
    assert not feed(ck.OneLockHolder(1, SERVERS), [
        acquire(1, "c1.1", 1), holds("c1", 1), freed, holds("c1", 1, False),
        acquire(3, "c2.1", 2), holds("c2", 2)])
    # A client believing a generation no committed acquire gave it, or two clients one generation.
    v = feed(ck.OneLockHolder(1, SERVERS), [holds("c1", 1)])
    assert v and v[0]["detail"] == "c1 believes it holds the lock with generation 1, which no committed acquire granted"
    v = feed(ck.OneLockHolder(1, SERVERS), [acquire(1, "c1.1", 1), holds("c1", 1), holds("c2", 1)])
    assert [x["detail"] for x in v] == [
        "c2 believes it holds the lock with generation 1, which the database granted to c1",
        "c2 and c1 both hold the lock with generation 1"]
    # Replicas' and the storage's state records are not clients' beliefs.
    assert not feed(ck.OneLockHolder(1, SERVERS), [{"type": "state", "node": "st", "token": 5}])


def test_lock_delay_respected():
    lost = txn("n1", 2, "expire", session="c1.1", at_ms=100.0, delay_until_ms=600.0, freed=[LOCK])
    checker = lambda: ck.LockDelayRespected(1, SERVERS, 500.0)
    # records are 100 ms apart: the acquire at index k happens at k * 100 ms
    filler = [{"type": "state", "node": "n2", "role": "replica"}] * 5
    assert not feed(checker(), [acquire(1, "c1.1", 1), lost, *filler, acquire(3, "c2.1", 2)])  # t=700
    v = feed(checker(), [acquire(1, "c1.1", 1), lost, acquire(3, "c2.1", 2)])  # t=200
    assert v and "100 ms after c1.1's session was lost" in v[0]["detail"]
    released = txn("n1", 2, "release", session="c1.1", lock=LOCK)
    assert not feed(checker(), [acquire(1, "c1.1", 1), released, acquire(3, "c2.1", 2)])
