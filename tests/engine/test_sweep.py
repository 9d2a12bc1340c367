"""Seed sweep with the random nemesis: zero safety violations, every history linearizable, and a
leader within 10 election timeouts of the final heal. 500 seeds x {3, 5} nodes by default; the
nightly sweep (`make sweep`, i.e. --sweep) runs 5000 seeds x {3, 5, 7} with longer runs."""

import os
from multiprocessing import get_context

import pytest

from engine.run import run_scenario
from engine.scenario import parse_scenario

ELECTION_TIMEOUT_MAX_MS = 300


def one(args):
    seed, nodes, duration_ms, heal_ms, *config = args
    scn = parse_scenario({
        "nodes": nodes, "seed": seed, "duration_ms": duration_ms,
        "config": config[0] if config else {},
        "workload": {"clients": 3, "rate_per_s": 20, "keys": 3},
        "nemesis": {"interval_ms": 500, "faults": ["crash", "partition", "cut", "loss", "pause"],
                    "heal_ms": heal_ms},
    })
    s = run_scenario(scn)
    return (seed, nodes, s["violations"], s["linearizable"], s["leader_after_heal_ms"],
            s["ops"]["ok"])


def sweep(seeds, node_counts, duration_ms, heal_ms, config=None):
    jobs = [(s, n, duration_ms, heal_ms, config or {}) for s in seeds for n in node_counts]
    with get_context("fork").Pool(os.cpu_count() or 2) as pool:
        results = pool.map(one, jobs, chunksize=8)
    unsafe = [r for r in results if r[2]]
    nonlin = [r for r in results if r[3] is not True]
    slow = [r for r in results if r[4] is None or r[4] > 10 * ELECTION_TIMEOUT_MAX_MS]
    assert not unsafe, f"safety violations (seed, nodes, ...): {unsafe[:3]}"
    assert not nonlin, f"not linearizable (or search budget hit): {[(r[0], r[1], r[3]) for r in nonlin[:5]]}"
    assert not slow, f"no leader within 10 election timeouts of the heal: {[(r[0], r[1], r[4]) for r in slow[:5]]}"
    assert sum(r[5] for r in results) > len(results) * 20  # the clients really did work
    return results


def test_sweep_500_seeds_3_and_5_nodes():
    sweep(range(500), (3, 5), duration_ms=12_000, heal_ms=9_000)


def test_sweep_with_prevote_and_check_quorum():
    sweep(range(10_000, 10_150), (3, 5), duration_ms=12_000, heal_ms=9_000,
          config={"pre_vote": True, "check_quorum": True})


@pytest.mark.slow
def test_sweep_nightly_prevote_and_check_quorum():
    sweep(range(20_000, 22_000), (3, 5, 7), duration_ms=40_000, heal_ms=35_000,
          config={"pre_vote": True, "check_quorum": True})


@pytest.mark.slow
def test_sweep_nightly():
    sweep(range(1000, 6000), (3, 5, 7), duration_ms=40_000, heal_ms=35_000)
