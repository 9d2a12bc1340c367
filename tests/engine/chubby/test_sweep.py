"""Chubby seed sweep with the random nemesis (crash, pause, partition, cut, loss on replicas,
clients and the storage alike; a client paused for a 500 ms interval outlives its 400 ms session
lease and 800 ms grace period... or not, by the seed): zero violations, a master soon after the
final heal, and the runs really did fail over, put sessions in jeopardy, save some in their grace
period, lose others, and write to the storage. 500 seeds x {3, 5} replicas by default (sized like
ZooKeeper's: 4 s runs); --sweep runs more and longer."""

import pytest

from engine.protocols.chubby.config import ChubbyConfig
from engine.protocols.chubby.liveness import bound_ms

from .harness import CELL, sweep

BOUND_MS = bound_ms(ChubbyConfig(**CELL))


def count(results, event):
    return sum(1 for r in results if r["events"].get(event))


def check(results):
    unsafe = [r for r in results if r["violations"]]
    slow = [r for r in results if r["master_after_heal_ms"] is None or r["master_after_heal_ms"] > BOUND_MS]
    assert not unsafe, f"safety violations: {[(r['seed'], r['nodes'], r['violations'][0]) for r in unsafe[:3]]}"
    assert not slow, f"no master soon after the heal: {[(r['seed'], r['nodes'], r['master_after_heal_ms']) for r in slow[:5]]}"
    n = len(results)
    assert sum(1 for r in results if r["epochs"] > 1) > n / 2  # masters failed over
    assert count(results, "jeopardy") > n / 2
    assert count(results, "reconnect") > n / 3  # sessions saved in their grace period
    assert count(results, "grace_end") > n / 100  # ... and sessions lost
    assert sum(r["accepted"] for r in results) > 5 * n  # the storage took writes
    assert sum(r["client_pauses"] for r in results) > n / 20


def test_sweep_500_seeds_3_and_5_replicas():
    check(sweep(range(500), (3, 5), duration_ms=4000, heal_ms=3000))


@pytest.mark.slow
def test_sweep_nightly():
    check(sweep(range(5000, 7000), (3, 5), duration_ms=20_000, heal_ms=16_000))


def test_no_lock_delay_is_caught_under_the_nemesis():
    results = sweep(range(40), (3, 5), duration_ms=4000, heal_ms=3000,
                    config={"mutations": ["no_lock_delay"]})
    caught = [r for r in results if r["violations"]]
    assert len(caught) >= 3
    assert {v["invariant"] for r in caught for v in r["violations"]} == {"Lock-delay respected"}
