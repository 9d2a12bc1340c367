"""Paxos on the whole kernel, through the registry: the dueling proposers and their cure, the
nemesis aiming at the leader, Multi-Paxos serving the key-value workload, and every mutation caught
under random faults. (Determinism, snapshots and replays are the contract tests',
tests/engine/test_contract.py.)"""

import random

import pytest

from engine.protocols.paxos import proposers
from engine.protocols.paxos.config import MUTATIONS
from engine.run import run_scenario
from engine.scenario import parse_scenario
from engine.sim import Simulation

WORKLOAD = {"kind": "kv", "clients": 3, "rate_per_s": 20, "keys": 3}


def proposals(n: int) -> dict:
    return {f"n{i}": f"v{i}" for i in range(1, n + 1)}


def rounds(seed: int, n: int, count: int = 30, until_ms: float = 3000) -> list[dict]:
    """Random `timeout` actions: proposers start new rounds at random instants (basic Paxos)."""
    rng = random.Random(seed)
    acts = [{"at": round(rng.uniform(0, until_ms), 3), "do": "timeout", "node": f"n{rng.randint(1, n)}"}
            for _ in range(count)]
    return sorted(acts, key=lambda a: a["at"])


def basic(seed: int, nodes: int, duration_ms: float, heal_ms: float, **config) -> dict:
    """A basic-Paxos scenario: every node proposes, rounds restart at random, the nemesis every
    100 ms."""
    return {"protocol": "paxos", "nodes": nodes, "seed": seed, "duration_ms": duration_ms,
            "config": {"proposals": proposals(nodes), **config},
            "nemesis": {"interval_ms": 100, "heal_ms": heal_ms},
            "actions": rounds(seed, nodes, until_ms=heal_ms)}


def multi(seed: int, nodes: int, duration_ms: float, heal_ms: float, **config) -> dict:
    """A Multi-Paxos scenario: three key-value clients, the nemesis every 500 ms."""
    return {"protocol": "paxos", "nodes": nodes, "seed": seed, "duration_ms": duration_ms,
            "config": {"mode": "multi", **config}, "workload": WORKLOAD,
            "nemesis": {"interval_ms": 500, "heal_ms": heal_ms}}


def first_chosen_ms(config: dict, seed: int, until_ms: float = 5000):
    sim = Simulation(parse_scenario({"protocol": "paxos", "nodes": 3, "seed": seed,
                                     "duration_ms": until_ms, "config": config}))
    mirror = sim.checkers[0]
    while sim.step():
        if mirror.chosen.get(0):
            return sim.now_ms, sim
        if sim.now_ms > until_ms:
            break
    return None, sim


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_dueling_proposers_livelock_without_backoff(seed):
    """§2.4: "two proposers each keep issuing a sequence of proposals with increasing numbers,
    none of which are ever chosen". n1 and n2 start together; each Nack (or its own acceptor's
    promise to the rival) sends a proposer straight into a higher round, which preempts the rival's
    phase 2. Five simulated seconds, hundreds of rounds, nothing chosen."""
    t, sim = first_chosen_ms({"proposals": {"n1": "x", "n2": "y"}, "backoff": False}, seed=seed)
    assert t is None
    assert min(sim.nodes["n1"].max_round, sim.nodes["n2"].max_round) > 100
    assert not sim.violations


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_randomised_backoff_cures_the_duel(seed):
    t, sim = first_chosen_ms({"proposals": {"n1": "x", "n2": "y"}}, seed=seed)
    assert t is not None and t < 200
    assert not sim.violations


def test_the_nemesis_aims_at_the_multi_paxos_leader():
    sim = Simulation(parse_scenario({"protocol": "paxos", "nodes": 3, "seed": 3,
                                     "duration_ms": 2000, "config": {"mode": "multi"}}))
    sim.run_until(2000)
    leaders = [n for n, r in sim.roles().items() if r == "leader"]
    assert len(leaders) == 1 and proposers(sim) == leaders


def test_multi_paxos_serves_the_key_value_workload():
    """The kv workload's ClientNode, unchanged, finds the leader through redirects."""
    s = run_scenario(parse_scenario({**multi(5, 3, 5000, 0), "nemesis": None}))
    assert s["ops"]["ok"] > 50 and s["linearizable"] is True and not s["violations"]


MUTATION_CASES = [(mode, m) for mode in ("basic", "multi") for m in sorted(MUTATIONS)]


@pytest.mark.parametrize("mode,mutation", MUTATION_CASES)
def test_every_mutation_is_caught_under_random_faults(mode, mutation):
    """The random nemesis finds each planted bug within a few seeds (5 nodes)."""
    for seed in range(10):
        if mode == "basic":
            sc = basic(seed, 5, 5000, 3000, mutations=[mutation])
        else:
            sc = multi(seed, 5, 12_000, 9000, mutations=[mutation])
        s = run_scenario(parse_scenario(sc))
        if s["violations"]:
            assert all(v["seed"] == seed for v in s["violations"])
            return
    pytest.fail(f"{mutation} went unnoticed in 10 seeds of {mode} Paxos")
