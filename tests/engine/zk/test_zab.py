"""Zab and sessions, piece by piece: the granted session timeout, every synchronisation mode under
the nemesis, stable storage across a crash, determinism of a nemesis run."""

from __future__ import annotations

import collections

import pytest

from engine.protocols.zk.config import ZkConfig

from .harness import nemesis_scenario, run, scenario


@pytest.mark.parametrize("asked, granted", [(10.0, 100.0), (400.0, 400.0), (5000.0, 1000.0)])
def test_the_session_timeout_is_granted_within_2_to_20_ticks(asked, granted):
    assert ZkConfig(session_timeout_ms=asked).negotiate_timeout_ms(asked) == granted
    sim, recs = run(scenario(duration_ms=4000, config={"clients": 1, "session_timeout_ms": asked}))
    assert sim.nodes["c1"].timeout_ms == granted


def test_every_synchronisation_mode_happens_under_the_nemesis():
    kinds = collections.Counter()
    for seed in range(30):
        _, recs = run(nemesis_scenario(seed, 5, 4000, 3000), messages=True)
        kinds.update(r["msg"]["kind"] for r in recs if r["type"] == "send")
    assert kinds["DIFF"] > 100 and kinds["TRUNC"] >= 1 and kinds["SNAP"] >= 1
    assert kinds["NEWLEADER"] == kinds["DIFF"] + kinds["TRUNC"] + kinds["SNAP"]


def test_history_and_epochs_survive_a_crash():
    d = scenario(nodes=3, duration_ms=2500, actions=[{"at": 1000, "do": "crash", "node": "n1"}])
    sim, _ = run(d, until_ms=1000.5)
    kept = sim.persisted["n1"]
    assert kept["history"] and kept["current_epoch"] == 1 == kept["accepted_epoch"]
    d["actions"].append({"at": 1500, "do": "restart", "node": "n1"})
    sim, _ = run(d)
    n1 = sim.nodes["n1"]
    assert n1.history[:len(kept["history"])] == kept["history"] and n1.role == "following"
    assert n1.committed_zxid() == sim.nodes["n3"].committed_zxid()


def test_a_leader_that_loses_its_quorum_steps_down():
    d = scenario(nodes=5, duration_ms=2000, actions=[
        {"at": 800, "do": "partition", "groups": [["n5", "n4"], ["n1", "n2", "n3"]]}])
    sim, recs = run(d)
    n5 = [r for r in recs if r["type"] == "state" and r["node"] == "n5"]
    assert n5[0]["role"] == "leading" and n5[-1]["role"] != "leading"
    leaders = {r["node"] for r in recs if r["type"] == "state" and r.get("phase") == "broadcast"
               and r["role"] == "leading" and r["epoch"] == 2}
    assert leaders <= {"n1", "n2", "n3"} and len(leaders) == 1 and sim.violations == []
