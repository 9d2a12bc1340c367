"""Rewind, fork and share links rest on this: a live session's clicks, replayed from the recorded
action list, reach the same state; snapshots restore exactly."""

import orjson

from engine.scenario import parse_scenario
from engine.sim import Simulation

from .helpers import load


def test_live_clicks_replay_to_the_same_digest():
    scn = parse_scenario(load("clean_election", workload={"clients": 2, "rate_per_s": 10, "keys": 2}))
    live = Simulation(scn)
    live.run_until(700)
    live.act({"do": "crash", "node": "n2"})
    for _ in range(37):  # step one event at a time, then click between two events
        live.step()
    live.act({"do": "cut", "from": "n1", "to": "n3", "both": False})
    live.act({"do": "request", "node": "n4", "op": "write", "key": "k1", "value": 4})
    live.run_until(2500)
    live.act({"do": "restart", "node": "n2"})
    live.run_until(4000)

    replayed = Simulation(scn.with_(actions=live.actions))
    replayed.run_until(4000)
    assert replayed.digest() == live.digest()
    assert replayed.events == live.events


def test_snapshot_restore_continues_identically():
    scn = parse_scenario(load("minority_partition"))
    a = Simulation(scn)
    a.run_until(1500)
    b = Simulation.restore(a.snapshot())
    assert b.digest() == a.digest()
    out_a, out_b = [], []
    a.subscribe(lambda r: out_a.append(orjson.dumps(r)))
    b.subscribe(lambda r: out_b.append(orjson.dumps(r)))
    a.run_until(5000)
    b.run_until(5000)
    assert out_a == out_b and a.digest() == b.digest()
    assert a.violations == b.violations == []


def test_snapshot_restore_continues_identically_on_the_fast_paths():
    """Without observers (nobody recording messages) sends and timer re-arms take the kernel's
    short paths; a restored world must take them against its own queue and timers too."""
    scn = parse_scenario({**load("minority_partition"), "config": {"check_quorum": True},
                          "workload": {"clients": 2, "rate_per_s": 20, "keys": 2}})
    a = Simulation(scn, checkers=False)
    a.run_until(1500)
    b = Simulation.restore(a.snapshot())
    a.run_until(6000)
    b.run_until(6000)
    assert a.events == b.events > 1000
    assert a.digest() == b.digest()


def test_fork_after_rewind_diverges_only_after_the_fork_point():
    scn = parse_scenario(load("clean_election"))
    a = Simulation(scn)
    a.run_until(1000)
    mid = a.digest()
    a.act({"do": "crash", "node": "n1"})
    a.run_until(2000)
    kept = [x for x in a.actions if x["at"] <= 1000]
    b = Simulation(scn.with_(actions=kept))
    b.run_until(1000)
    assert b.digest() == mid
    b.act({"do": "crash", "node": "n2"})
    b.run_until(2000)
    assert b.digest() != a.digest()


def test_schedule_puts_a_recorded_action_at_its_own_time_and_refuses_the_past():
    import pytest

    from engine.scenario import ScenarioError

    scn = parse_scenario(load("clean_election"))
    a = Simulation(scn)
    a.run_until(500)
    rec = a.act({"do": "crash", "node": "n3"})
    a.run_until(1500)
    b = Simulation(scn)
    b.run_until(400)
    assert b.schedule(rec) == rec
    b.run_until(1500)
    assert b.digest() == a.digest()
    with pytest.raises(ScenarioError, match="before the current time"):
        b.schedule({**rec, "at": 10})
    assert b.actions == [rec]


def test_heal_one_link_of_a_partition():
    scn = parse_scenario(load("clean_election"))
    sim = Simulation(scn)
    sim.act({"do": "partition", "groups": [["n1", "n2"]]})
    sim.run_until(1)
    assert sim.network.cut_state("n1", "n3") == "both"
    sim.act({"do": "heal", "from": "n1", "to": "n3", "both": False})
    sim.run_until(2)
    assert sim.network.cut_state("n1", "n3") == "n3>n1"
    assert sim.network.cut_state("n2", "n4") == "both"  # the rest of the partition stands
    sim.act({"do": "heal", "from": "n3", "to": "n1"})
    sim.run_until(3)
    assert sim.network.cut_state("n1", "n3") == "none"
    sim.act({"do": "heal"})
    sim.run_until(4)
    assert all(sim.network.cut_state(x, y) == "none" for x in sim.servers for y in sim.servers if x != y)


def test_unsubscribe_a_bound_method():
    class Sink:
        def __init__(self):
            self.n = 0

        def take(self, rec):
            self.n += 1

    sink = Sink()
    sim = Simulation(parse_scenario(load("clean_election")))
    sim.subscribe(sink.take)
    sim.run_until(500)
    seen = sink.n
    assert seen > 0
    sim.unsubscribe(sink.take)  # a new bound-method object, equal to the subscribed one
    sim.run_until(1000)
    assert sink.n == seen


def _held_scenario(*actions):
    return parse_scenario(load("clean_election", duration_ms=3000, actions=list(actions)))


def test_pause_resume_pause_at_one_instant_keeps_what_was_held():
    sim = Simulation(_held_scenario(
        {"at": 500, "do": "pause", "node": "n2"},
        {"at": 700, "do": "resume", "node": "n2"},
        {"at": 700, "do": "pause", "node": "n2"},
        {"at": 900, "do": "resume", "node": "n2"}))
    recs = []
    sim.subscribe(recs.append)
    sim.run_until(3000)
    sent_to_n2 = {r["id"] for r in recs if r["type"] == "send" and r["to"] == "n2"}
    ended = {r["id"] for r in recs if r["type"] in ("deliver", "drop")}
    assert sent_to_n2 - ended <= {m for m, f in sim.flight.items()}  # nothing lost silently
    held_then_handled = [r for r in recs if r["type"] == "deliver" and r["t"] == 900.0]
    assert held_then_handled  # what arrived during both pauses was handled at the final resume
    assert not sim.violations


def test_crashing_a_paused_node_drops_what_it_held():
    sim = Simulation(_held_scenario(
        {"at": 500, "do": "pause", "node": "n2"},
        {"at": 700, "do": "crash", "node": "n2"},
        {"at": 900, "do": "restart", "node": "n2"}))
    recs = []
    sim.subscribe(recs.append)
    sim.run_until(3000)
    drops = [r for r in recs if r["type"] == "drop" and r["t"] == 700.0 and r["why"] == "down"]
    assert drops
    overdue = [m for m, f in sim.flight.items() if f[4] < sim.now_us - 100_000]
    assert overdue == []


def test_a_snapshot_restored_in_another_process_checks_the_same(tmp_path):
    import os
    import subprocess
    import sys

    blob = tmp_path / "snap.bin"
    code_save = (
        "import sys; from tests.engine.helpers import load; from engine.scenario import parse_scenario;"
        "from engine.sim import Simulation;"
        "s = Simulation(parse_scenario(load('leader_crash_replication'))); s.run_until(1500);"
        f"open({str(blob)!r}, 'wb').write(s.snapshot())")
    code_load = (
        "from engine.sim import Simulation;"
        f"s = Simulation.restore(open({str(blob)!r}, 'rb').read()); s.run_until(9000);"
        "print(len(s.violations))")
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    env1 = {**os.environ, "PYTHONHASHSEED": "1", "PYTHONPATH": root}
    env2 = {**os.environ, "PYTHONHASHSEED": "2", "PYTHONPATH": root}
    subprocess.run([sys.executable, "-c", code_save], check=True, env=env1, cwd=root, timeout=60)
    out = subprocess.run([sys.executable, "-c", code_load], check=True, env=env2, cwd=root,
                         capture_output=True, text=True, timeout=60)
    assert out.stdout.strip() == "0"


def test_subscribing_late_gives_the_records_of_having_watched_all_along():
    """Unwatched, the kernel skips asking nodes for state changes; a late observer must still get
    exactly the records from then on that an observer present from the start gets."""
    spec = {"nodes": 3, "seed": 1, "duration_ms": 3000,
            "workload": {"clients": 1, "rate_per_s": 20, "keys": 2}}
    always = Simulation(parse_scenario(spec), checkers=False)
    seen: list[dict] = []
    always.subscribe(seen.append, messages=False)
    always.run_until(3000)
    late = Simulation(parse_scenario(spec), checkers=False)
    late.run_until(1000)
    got: list[dict] = []
    late.subscribe(got.append, messages=False)
    late.run_until(3000)
    want = [r for r in seen if r["t"] > 1000]
    assert len(want) > 50 and any(r["type"] == "state" for r in want)
    assert [orjson.dumps(r) for r in got] == [orjson.dumps(r) for r in want]
