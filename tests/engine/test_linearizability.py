"""The linearizability checker (Wing-Gong/Lowe search, per-key)."""

from hypothesis import given, settings
from hypothesis import strategies as st

from engine.checkers.linearizability import LinearizabilityChecker, check_key, history_by_key


def h(*events):
    """events: (t, client, op, f, key, value)"""
    out = []
    for t, c, op, f, k, v in events:
        out.append({"type": "client", "t": t, "client": c, "req": 1, "op": op, "f": f, "key": k,
                    "value": v})
    return out


def check(records):
    c = LinearizabilityChecker(0, [])
    for r in records:
        c.observe(r)
    return c.check(), c.violations


def test_sequential_write_then_read():
    assert check(h((0, "a", "invoke", "write", "x", 1), (1, "a", "ok", "write", "x", 1),
                   (2, "b", "invoke", "read", "x", None), (3, "b", "ok", "read", "x", 1)))[0] is True


def test_stale_read_after_a_completed_write_is_not_linearizable():
    ok, vs = check(h((0, "a", "invoke", "write", "x", 1), (1, "a", "ok", "write", "x", 1),
                     (2, "b", "invoke", "read", "x", None), (3, "b", "ok", "read", "x", None)))
    assert ok is False and "'x'" in vs[0]["detail"]


def test_concurrent_read_may_see_either_value():
    base = [(0, "a", "invoke", "write", "x", 1), (0.5, "b", "invoke", "read", "x", None)]
    for seen in (None, 1):
        assert check(h(*base, (2, "b", "ok", "read", "x", seen), (3, "a", "ok", "write", "x", 1)))[0]


def test_info_write_may_or_may_not_have_happened():
    base = [(0, "a", "invoke", "write", "x", 1), (1, "a", "info", "write", "x", 1),
            (5, "b", "invoke", "read", "x", None)]
    assert check(h(*base, (6, "b", "ok", "read", "x", 1)))[0] is True
    assert check(h(*base, (6, "b", "ok", "read", "x", None)))[0] is True
    assert check(h(*base, (6, "b", "ok", "read", "x", 2)))[0] is False


def test_info_cas_that_cannot_apply_is_left_out():
    assert check(h((0, "a", "invoke", "cas", "x", [5, 6]), (1, "a", "info", "cas", "x", [5, 6]),
                   (2, "b", "invoke", "read", "x", None), (3, "b", "ok", "read", "x", None)))[0]


def test_failed_cas_did_not_happen():
    assert check(h((0, "a", "invoke", "write", "x", 1), (1, "a", "ok", "write", "x", 1),
                   (2, "a", "invoke", "cas", "x", [2, 3]), (3, "a", "fail", "cas", "x", [2, 3]),
                   (4, "a", "invoke", "read", "x", None), (5, "a", "ok", "read", "x", 1)))[0]


def test_keys_are_checked_independently():
    recs = h((0, "a", "invoke", "write", "x", 1), (1, "a", "ok", "write", "x", 1),
             (2, "b", "invoke", "read", "y", None), (3, "b", "ok", "read", "y", 1))
    ok, vs = check(recs)
    assert ok is False and "'y'" in vs[0]["detail"]
    assert set(history_by_key(recs)) == {"x", "y"}


@st.composite
def sequential_history(draw):
    """A history produced by a real register, ops strictly one after another, with some
    operations overlapping their neighbours (still legal), and some timeouts."""
    state = None
    ops = []
    t = 0.0
    for _ in range(draw(st.integers(1, 25))):
        f = draw(st.sampled_from(["read", "write", "cas"]))
        v = draw(st.integers(1, 3))
        if f == "read":
            ok, out, arg = True, state, None
        elif f == "write":
            ok, out, arg, state = True, v, v, v
        else:
            arg = [draw(st.integers(1, 3)), v]
            ok = state == arg[0]
            out = arg
            if ok:
                state = v
        ops.append((t, f, arg, ok, out, draw(st.booleans())))
        t += 1.0
    return ops


@settings(max_examples=150, deadline=None)
@given(sequential_history(), st.randoms(use_true_random=False))
def test_histories_of_a_real_register_are_linearizable(ops, rnd):
    recs = []
    for i, (t, f, arg, ok, out, timeout) in enumerate(ops):
        c = f"p{i % 3}"
        recs.append({"type": "client", "t": t, "client": c, "req": i, "op": "invoke", "f": f,
                     "key": "x", "value": arg})
        end = t + 0.5 + rnd.random() * 0.4  # overlaps nothing: each op still has its own slot
        if timeout and f != "read":
            recs.append({"type": "client", "t": end, "client": c, "req": i, "op": "info", "f": f,
                         "key": "x", "value": arg})
        else:
            recs.append({"type": "client", "t": end, "client": c, "req": i,
                         "op": "ok" if ok else "fail", "f": f, "key": "x", "value": out})
    recs.sort(key=lambda r: r["t"])
    assert check(recs)[0] is True


@settings(max_examples=100, deadline=None)
@given(sequential_history())
def test_a_read_that_returns_a_never_written_value_is_caught(ops):
    recs = []
    for i, (t, f, arg, ok, out, _) in enumerate(ops):
        recs.append({"type": "client", "t": t, "client": "p", "req": i, "op": "invoke", "f": f,
                     "key": "x", "value": arg})
        recs.append({"type": "client", "t": t + 0.5, "client": "p", "req": i,
                     "op": "ok" if ok else "fail", "f": f, "key": "x", "value": out})
    recs.append({"type": "client", "t": 1000, "client": "p", "req": -1, "op": "invoke", "f": "read",
                 "key": "x", "value": None})
    recs.append({"type": "client", "t": 1001, "client": "p", "req": -1, "op": "ok", "f": "read",
                 "key": "x", "value": 99})
    assert check(recs)[0] is False


def test_search_budget_reports_unknown_not_false():
    ops = [{"call": 0.0, "ret": 100.0, "f": "write", "value": i % 2, "definite": True, "key": "x"}
           for i in range(16)]
    ops.append({"call": 0.0, "ret": 100.0, "f": "read", "value": None, "out": 7, "definite": True,
                "key": "x"})
    assert check_key(ops, budget=50) is None
    assert check_key(ops) is False
