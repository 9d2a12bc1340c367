"""Seed sweep with the random nemesis: zero safety violations; Multi-Paxos histories linearizable;
after the final heal a value chosen (basic) or a leader serving (multi) within 10 timeouts; in
basic Paxos every live learner ends with the one chosen value. 500 seeds x {3, 5} nodes x
{basic, multi} by default; `--sweep` (`make sweep`) runs 5000 seeds x {3, 5, 7} with longer runs."""

import os
from multiprocessing import get_context

import pytest

from engine.protocols.paxos.config import PaxosConfig
from engine.protocols.paxos.liveness import bound_ms
from engine.run import run_scenario
from engine.scenario import parse_scenario

from .test_runs import basic, multi


class LastLearned:
    """Each server's learned slot-0 value at the end (forgotten when it goes down)."""

    def __init__(self):
        self.value: dict[str, object] = {}

    def __call__(self, rec):
        if rec["type"] != "state":
            return
        if rec["role"] == "down":
            self.value.pop(rec["node"], None)
        elif "0" in (rec.get("learned") or {}):
            self.value[rec["node"]] = rec["learned"]["0"]


def one(args):
    mode, seed, nodes, duration_ms, heal_ms = args
    sc = parse_scenario((basic if mode == "basic" else multi)(seed, nodes, duration_ms, heal_ms))
    last = LastLearned()
    s = run_scenario(sc, observers=[last])
    learned = {repr(last.value.get(n)) for n in sc.node_ids} if mode == "basic" else set()
    return (mode, seed, nodes, [v["invariant"] for v in s["violations"]], s["linearizable"],
            s["progress_after_heal_ms"], (s["ops"] or {}).get("ok", 0), learned)


def sweep(modes, seeds, node_counts, durations):
    jobs = [(mode, s, n, *durations[mode]) for mode in modes for s in seeds for n in node_counts]
    with get_context("fork").Pool(os.cpu_count() or 2) as pool:
        results = pool.map(one, jobs, chunksize=8)
    unsafe = [r[:4] for r in results if r[3]]
    nonlin = [r[:3] + (r[4],) for r in results if r[0] == "multi" and r[4] is not True]
    slow = [r[:3] + (r[5],) for r in results
            if r[5] is None or r[5] > bound_ms(PaxosConfig(mode=r[0]))]
    split = [r[:3] + (r[7],) for r in results if r[0] == "basic" and len(r[7]) != 1]
    assert not unsafe, f"safety violations (mode, seed, nodes, invariants): {unsafe[:3]}"
    assert not nonlin, f"not linearizable (or search budget hit): {nonlin[:5]}"
    assert not slow, f"no progress within 10 timeouts of the heal: {slow[:5]}"
    assert not split, f"live learners disagree or did not learn: {split[:5]}"
    multi_runs = [r for r in results if r[0] == "multi"]
    if multi_runs:
        assert sum(r[6] for r in multi_runs) > len(multi_runs) * 20  # the clients really did work
    return results


DEFAULT = {"basic": (5000, 3000), "multi": (12_000, 9000)}  # (duration_ms, heal_ms)


def test_sweep_500_seeds_basic_and_multi_3_and_5_nodes():
    results = sweep(("basic", "multi"), range(500), (3, 5), DEFAULT)
    assert len(results) == 2000


@pytest.mark.slow
def test_sweep_nightly():
    sweep(("basic", "multi"), range(1000, 6000), (3, 5, 7),
          {"basic": (12_000, 9000), "multi": (40_000, 35_000)})
