"""The Chubby cell's rules, one at a time: the database, the master lease, epochs, KeepAlives, the
client's jeopardy; plus the config and topology errors. Nodes are driven by hand through the
tests' recording context."""

from __future__ import annotations

import pytest

from engine.protocols.chubby.client import JEOPARDY, SAFE, ChubbyClient
from engine.protocols.chubby.config import LOCK
from engine.protocols.chubby.db import ChubbyDB
from engine.protocols.chubby.server import ChubbyServer
from engine.rng import stream
from engine.scenario import ScenarioError, parse_scenario

from ..helpers import FakeContext
from .harness import CELL, run, scenario


def Ctx(now_ms: float = 0) -> FakeContext:
    """A recording context at `now_ms`."""
    return FakeContext(int(now_ms * 1000))


def cell(**config):
    sc = parse_scenario(scenario(config={**CELL, **config}))
    return sc.layout, sc.config


def server(nid="n1", persistent=None, **config):
    topo, cfg = cell(**config)
    return ChubbyServer(nid, topo, cfg, stream(1, f"node:{nid}"), persistent)


def serving(srv, epoch=2, sessions=("c1.1",)):
    """Make `srv` the master of `epoch` with these sessions open (as after a failover)."""
    srv.phase, srv.ballot, srv.serving, srv.master_epoch = "leading", (3, srv.id), True, epoch
    for s in sessions:
        srv.db.sessions[s] = s.split(".")[0]
        srv.session_end[s] = 10_000_000
    return srv


def test_db_generations_release_and_lock_delay():
    db = ChubbyDB()
    for s in ("c1.1", "c2.1"):
        db.apply({"op": "open", "session": s, "client": s[:2], "req": 1})
    take = lambda s, at: db.apply({"op": "acquire", "session": s, "client": s[:2], "lock": LOCK,
                                   "req": 2, "at_ms": at})
    assert take("c1.1", 10) == {"ok": True, "generation": 1}
    assert take("c2.1", 11) == {"ok": False}  # held
    assert db.apply({"op": "release", "session": "c1.1", "client": "c1", "lock": LOCK, "req": 3})["ok"]
    assert take("c2.1", 12) == {"ok": True, "generation": 2}  # released: no delay
    out = db.apply({"op": "expire", "session": "c2.1", "at_ms": 20, "delay_until_ms": 520})
    assert out == {"ok": True, "freed": [LOCK]} and "c2.1" not in db.sessions
    assert take("c1.1", 519.999) == {"ok": False}  # lock-delay (§2.4)
    assert take("c1.1", 520) == {"ok": True, "generation": 3}
    assert take("c1.1", 600) == {"ok": True, "generation": 3}  # asked again: the same grant


def test_a_replica_under_lease_refuses_other_candidates():
    srv = server("n2")
    ctx = Ctx(1000)
    srv.handle_heartbeat(ctx, "n1", {"kind": "Heartbeat", "ballot": [1, "n1"], "commit": 0,
                                     "sent_us": 999_000})
    assert ("n1", {"kind": "LeaseAck", "ballot": [1, "n1"], "sent_us": 999_000}) in ctx.sent
    assert srv.lease_to == "n1" and srv.lease_until_us == 1_000_000 + 300_000
    ctx = Ctx(1200)
    srv.handle_prepare(ctx, "n3", {"kind": "Prepare", "ballot": [2, "n3"], "slot": 0})
    (to, nack), = ctx.sent
    assert to == "n3" and nack["kind"] == "Nack" and nack["lease_ms"] == 100
    assert srv.promised is None  # n3 was not promised anything
    ctx = Ctx(1300)  # the lease has run out
    srv.handle_prepare(ctx, "n3", {"kind": "Prepare", "ballot": [2, "n3"], "slot": 0})
    assert [m["kind"] for _, m in ctx.sent] == ["Promise"]


def test_a_restarted_replica_waits_one_lease_out():
    srv = server("n2", persistent=(None, {}, 0))
    ctx = Ctx(5000)
    srv.on_start(ctx)
    srv.on_message(ctx, "n3", {"kind": "Prepare", "ballot": [1, "n3"], "slot": 0})
    assert [m["kind"] for _, m in ctx.sent] == ["Nack"]
    ctx = Ctx(5300)
    srv.on_message(ctx, "n3", {"kind": "Prepare", "ballot": [1, "n3"], "slot": 0})
    assert [m["kind"] for _, m in ctx.sent] == ["Promise"]


def test_the_master_lease_runs_from_a_majoritys_acknowledged_heartbeat():
    srv = server("n1")
    srv.phase, srv.ballot = "leading", (1, "n1")
    ctx = Ctx(100)
    srv.heartbeat_message(ctx)  # the master's own promise, at 100 ms
    assert srv.lease_end_us == 0  # one of three is not a majority
    srv.handle_lease_ack(ctx, "n2", {"kind": "LeaseAck", "ballot": [1, "n1"], "sent_us": 100_000})
    assert srv.lease_end_us == 400_000 and ctx.timers["master_lease"] == 400_000
    srv.handle_lease_ack(ctx, "n3", {"kind": "LeaseAck", "ballot": [0, "n9"], "sent_us": 200_000})
    assert srv.lease_end_us == 400_000  # another ballot's acknowledgement counts for nothing
    srv.check_lease(Ctx(400))
    assert srv.phase != "leading" and not srv.serving


def test_old_epoch_calls_are_refused_and_keepalives_resume_the_session():
    srv = serving(server("n1"), epoch=2)
    ctx = Ctx(1000)
    srv.handle_acquire(ctx, "c1", {"kind": "Acquire", "session": "c1.1", "epoch": 1, "lock": LOCK, "req": 4})
    assert ctx.sent == [("c1", {"kind": "Reply", "req": 4, "ok": False, "error": "epoch", "epoch": 2})]
    ctx = Ctx(1000)
    srv.handle_keepalive(ctx, "c1", {"kind": "KeepAlive", "session": "c1.1", "epoch": 1})
    assert ctx.sent == [("c1", {"kind": "KeepAliveReply", "session": "c1.1", "epoch": 2,
                                "lease_until_ms": 1400.0})]  # at once: the fail-over event
    ctx = Ctx(1010)
    srv.handle_keepalive(ctx, "c1", {"kind": "KeepAlive", "session": "c1.1", "epoch": 2})
    assert ctx.sent == [] and srv.held == {"c1.1": "c1"}  # held ...
    assert ctx.timers["leases"] == 1_300_000  # ... until a quarter of the lease is left (§2.8)
    ctx = Ctx(1300)
    srv.on_timer(ctx, "leases")
    assert ctx.sent[0][1]["lease_until_ms"] == 1700.0
    ctx = Ctx(1300)
    srv.handle_keepalive(ctx, "c9", {"kind": "KeepAlive", "session": "c9.1", "epoch": 2})
    assert ctx.sent == [("c9", {"kind": "SessionExpired", "session": "c9.1"})]


def test_a_replica_that_is_not_master_redirects():
    srv = server("n2")
    srv.leader_id = "n1"
    ctx = Ctx(10)
    srv.handle_open(ctx, "c1", {"kind": "OpenSession", "session": "c1.1", "req": 1})
    assert ctx.sent == [("c1", {"kind": "Redirect", "master": "n1"})]


def test_the_master_expires_a_silent_session_with_lock_delay():
    srv = serving(server("n1"))
    srv.db.apply({"op": "acquire", "session": "c1.1", "client": "c1", "lock": LOCK, "req": 1, "at_ms": 0})
    srv.session_end["c1.1"] = 500_000
    ctx = Ctx(500)
    srv.tend_sessions(ctx)
    accepts = [m for _, m in ctx.sent if m["kind"] == "Accept"]
    assert accepts and accepts[0]["value"] == {"op": "expire", "session": "c1.1", "at_ms": 500.0,
                                               "delay_until_ms": 800.0}
    srv = serving(server("n1", mutations=["no_lock_delay"]))
    srv.db.apply({"op": "acquire", "session": "c1.1", "client": "c1", "lock": LOCK, "req": 1, "at_ms": 0})
    srv.session_end["c1.1"] = 500_000
    ctx = Ctx(500)
    srv.tend_sessions(ctx)
    assert [m for _, m in ctx.sent if m["kind"] == "Accept"][0]["value"]["delay_until_ms"] == 500.0


def test_the_client_enters_jeopardy_then_loses_its_session_after_the_grace_period():
    topo, cfg = cell()
    c = ChubbyClient("c1", topo, cfg, stream(1, "client:c1"))
    ctx = Ctx(0)
    c.on_start(ctx)
    c.on_message(ctx, c.master, {"kind": "SessionOpened", "session": "c1.1", "req": 1, "epoch": 1,
                                 "lease_until_ms": 400.0})
    assert c.state == SAFE and ctx.timers["lease"] == 360_000  # a tenth of the lease kept back
    ctx = Ctx(360)
    c.on_timer(ctx, "lease")
    assert c.state == JEOPARDY and ctx.timers["grace"] == 360_000 + 800_000
    ctx = Ctx(1160)
    c.on_timer(ctx, "grace")
    assert [r["event"] for r in c.records] == ["open", "jeopardy", "grace_end"]
    assert c.session is None and c.opening == "c1.2"


def test_config_and_topology_errors_name_the_field():
    for bad, needle in [({"nodes": 4}, "nodes: a Chubby cell has 3 or 5 replicas"),
                        ({"config": {"heartbeat_ms": 500, "master_lease_ms": 400}}, "heartbeat_ms must be shorter"),
                        ({"config": {"mutations": ["herd_watch"]}}, "config.mutations"),
                        ({"config": {"grace_period_ms": -1}}, "config.grace_period_ms"),
                        ({"topology": {"backends": 2}}, "topology: chubby takes 'nodes'")]:
        with pytest.raises(ScenarioError) as e:
            parse_scenario({**scenario(), **bad})
        assert needle in str(e.value), str(e.value)


def test_views_name_roles_epochs_sessions_lock_holder_queue_and_the_storage_token():
    sim, _ = run(scenario(duration_ms=800))
    views = sim.views()
    master = [v for n, v in views.items() if n.startswith("n") and v["role"] == "master"]
    assert len(master) == 1 and master[0]["epoch"] == 1
    m = master[0]
    assert sorted(m["sessions"]) == ["c1.1", "c2.1", "c3.1"] and set(m["session_leases"]) == set(m["sessions"])
    lock = m["locks"][LOCK]
    assert set(lock) == {"holder", "session", "generation", "delay_until_ms", "queue"}
    assert views["c1"]["session_state"] == "safe" and "local_lease_end_ms" in views["c1"]
    assert views["st"]["token"] is not None


def test_a_session_expiring_while_its_acquire_is_in_the_log_still_gets_lock_delay():
    """§2.4: the master grants c2.1's waiting acquire at 499 ms and c2.1's lease ends at 500 ms,
    before that slot is applied. The expiry, applied after the acquire, frees the lock c2.1 now
    holds, with lock-delay: nobody may take it until 500 + lock_delay_ms."""
    srv = serving(server("n1"), sessions=("c1.1", "c2.1"))
    srv.session_end["c2.1"] = 500_000
    srv.waiters[LOCK] = [("c2.1", "c2", 7)]
    ctx = Ctx(499)
    srv.maybe_grant(ctx, LOCK)
    ctx2 = Ctx(500)
    srv.tend_sessions(ctx2)
    proposed = []  # each command once (an Accept goes to every replica), in the order proposed
    for _, m in ctx.sent + ctx2.sent:
        if m["kind"] == "Accept" and m["value"] not in proposed:
            proposed.append(m["value"])
    assert [c["op"] for c in proposed] == ["acquire", "expire"]
    db = ChubbyDB()
    for s in ("c1.1", "c2.1"):
        db.apply({"op": "open", "session": s, "client": s[:2], "req": 1})
    outs = [db.apply(c) for c in proposed]
    assert outs[0]["ok"] and outs[1]["freed"] == [LOCK]
    assert db.locks[LOCK].delay_until_ms == 500 + srv.lock_delay_ms
    assert not db.free_at(LOCK, 500.001) and db.free_at(LOCK, 500 + srv.lock_delay_ms + 0.001)


def test_the_storage_checks_each_sequencers_lock_name_and_mode_then_its_generation():
    # Burrows 2006, §2.4: the server holding the data checks the sequencer is valid (the lock it
    # is protected by) and held in the appropriate mode, then fences by the generation.
    from engine.protocols.chubby import ChubbyStorage
    from engine.protocols.chubby.config import LOCK
    from engine.scenario import parse_scenario
    from engine.sim import Simulation

    sim = Simulation(parse_scenario({"protocol": "chubby", "nodes": 5, "seed": 1, "duration_ms": 100,
                                     "config": {"clients": 2, "auto": False}}))
    st = sim.nodes["st"]
    assert isinstance(st, ChubbyStorage) and st.guards == LOCK

    class Ctx:
        def __init__(self):
            self.sent = []

        def persist(self):
            pass

        def send(self, to, m):
            self.sent.append((to, m))

    ctx = Ctx()

    def write(seq, value):
        st.on_message(ctx, "c1", {"kind": "Write", "req": len(ctx.sent), "token": seq[2],
                                  "sequencer": seq, "value": value})
        return ctx.sent[-1][1]["accepted"], st.records[-1]

    assert write([LOCK, "exclusive", 3], "a")[0] is True
    ok, rec = write(["/ls/cell/other", "exclusive", 5], "b")
    assert not ok and rec["why"] == f"its sequencer is for /ls/cell/other, not {LOCK}"
    ok, rec = write([LOCK, "shared", 5], "c")
    assert not ok and "shared mode, not exclusive" in rec["why"]
    ok, rec = write([LOCK, "exclusive", 2], "d")
    assert not ok and "why" not in rec  # an older generation: fenced as before
    assert (st.value, st.token, st.accepted, st.rejected) == ("a", 3, 1, 3)
    from app.protocols.coord import write_sentence
    assert write_sentence({**rec, "why": "its sequencer is for x, not y"}) == \
        "st REJECTED c1's write 'd': its sequencer is for x, not y"


def test_the_cells_defaults_are_the_papers():
    # Burrows 2006: a session lease of 12 s (§2.8), a grace period of 45 s (§2.8), a lock-delay
    # of up to a minute, one minute by default (§2.4), five replicas (§2.1).
    from engine.protocols.chubby.config import ChubbyConfig

    c = ChubbyConfig()
    assert (c.session_lease_ms, c.grace_period_ms, c.lock_delay_ms) == (12_000.0, 45_000.0, 60_000.0)
