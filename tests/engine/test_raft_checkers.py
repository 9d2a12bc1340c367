"""Each checker on hand-written records: silent on a good history, precise on a bad one."""

from engine.protocols.raft.checkers import make_raft_checkers


def feed(records, servers=("n1", "n2", "n3")):
    cs = make_raft_checkers(42, list(servers))
    for r in records:
        for c in cs:
            c.observe(r)
    return {c.name: c.violations for c in cs[1:]}


def st(t, node, term, role, commit=0, log=None, voted_for=None):
    r = {"type": "state", "t": t, "node": node, "term": term, "role": role, "voted_for": voted_for,
         "commit": commit}
    if log is not None:
        r["log"] = {"keep": log[0], "append": log[1]}
    return r


W1 = {"client": "c1", "req": 1, "op": "write", "key": "k", "value": 1}
W2 = {"client": "c1", "req": 2, "op": "write", "key": "k", "value": 2}

GOOD = [
    st(1, "n1", 1, "candidate"),
    st(2, "n1", 1, "leader", log=(0, [[1, None]])),
    st(3, "n2", 1, "follower", log=(0, [[1, None]])),
    st(4, "n1", 1, "leader", commit=1),
    st(5, "n1", 1, "leader", commit=1, log=(1, [[1, W1]])),
    st(6, "n2", 1, "follower", commit=1, log=(1, [[1, W1]])),
    st(7, "n1", 1, "leader", commit=2),
    st(8, "n1", 1, "down", commit=2),
    st(9, "n2", 2, "leader", commit=2, log=(2, [[2, None]])),
]


def test_a_good_history_has_no_violations():
    assert all(v == [] for v in feed(GOOD).values())


def test_election_safety_two_leaders_one_term():
    out = feed([st(1, "n1", 3, "leader"), st(2, "n2", 3, "leader")])
    (v,) = out["Election Safety"]
    assert v["nodes"] == ["n1", "n2"] and v["t"] == 2 and v["seed"] == 42
    assert all(not vs for k, vs in out.items() if k != "Election Safety")


def test_leader_append_only_leader_drops_an_entry():
    out = feed([st(1, "n1", 1, "leader", log=(0, [[1, None], [1, W1]])),
                st(2, "n1", 1, "leader", log=(1, [[1, W2]]))])
    (v,) = out["Leader Append-Only"]
    assert v["nodes"] == ["n1"] and "2..2" in v["detail"]
    # a follower truncating is fine
    assert not feed([st(1, "n2", 1, "follower", log=(0, [[1, None], [1, W1]])),
                     st(2, "n2", 2, "follower", log=(1, [[2, W2]]))])["Leader Append-Only"]


def test_log_matching_same_index_and_term_different_prefix():
    out = feed([st(1, "n1", 2, "follower", log=(0, [[1, W1], [2, None]])),
                st(2, "n2", 2, "follower", log=(0, [[1, W2], [2, None]]))])
    (v,) = out["Log Matching"]
    assert v["nodes"] == ["n1", "n2"] and "index 1" in v["detail"]


def test_leader_completeness_new_leader_lacks_a_committed_entry():
    out = feed([st(1, "n1", 1, "leader", log=(0, [[1, W1]])),
                st(2, "n2", 1, "follower", log=(0, [[1, W1]])),
                st(3, "n1", 1, "leader", commit=1),
                st(4, "n3", 2, "leader", log=(0, [[2, None]]))])
    (v,) = out["Leader Completeness"]
    assert v["nodes"] == ["n3"] and v["t"] == 4 and "index 1" in v["detail"]


def test_state_machine_safety_different_entries_applied_at_one_index():
    out = feed([st(1, "n1", 1, "leader", commit=1, log=(0, [[1, W1]])),
                st(2, "n2", 2, "follower", commit=1, log=(0, [[2, W2]]))])
    (v,) = out["State Machine Safety"]
    assert v["nodes"] == ["n1", "n2"] and "index 1" in v["detail"]


def test_checkers_never_change_what_they_observe():
    import copy

    recs = copy.deepcopy(GOOD)
    feed(recs)
    assert recs == GOOD
