"""The balancing algorithms on their own (no kernel): nginx's smooth WRR sequence, round robin's
evenness, least connections, bounded loads, consistent hashing's and Maglev's properties, and
Mitzenmacher's power of two choices against one random choice over 200 seeds."""

from __future__ import annotations

from collections import Counter

import pytest

from engine import rng as rngmod
from engine.protocols.lb.algorithms import ALGORITHM_CLASSES
from engine.protocols.lb.config import LbConfig
from engine.protocols.lb.hashing import Ring, maglev_table


class FakeBalancer:
    """What an algorithm reads of its balancer: usable backends, loads, weights, an RNG, now,
    whether its records are read."""

    def __init__(self, backends, weights=None, seed=1):
        self.usable = tuple(backends)
        self.usable_set = frozenset(backends)
        self.weight = weights or {b: 1 for b in backends}
        self.in_flight = {b: 0 for b in backends}
        self.rng = rngmod.stream(seed, "node:lb1")
        self.now_us = 0
        self.recording = True

    def loads(self):
        return self.in_flight


def algo(name, backends, **config):
    cfg = LbConfig(algorithm=name, **config)
    return ALGORITHM_CLASSES[name](list(backends), cfg, cfg.mutations)


def picks(a, lb, n, key=lambda i: f"k{i}"):
    return [a.pick(lb, key(i))[0] for i in range(n)]


def test_smooth_wrr_5_1_1_is_nginx_sequence():
    lb = FakeBalancer(["a", "b", "c"], {"a": 5, "b": 1, "c": 1})
    seq = picks(algo("weighted_round_robin", "abc"), lb, 21)
    assert "".join(seq) == "aabacaa" * 3


def test_round_robin_is_even_and_skips_the_unusable():
    a = algo("round_robin", ["b1", "b2", "b3", "b4"])
    lb = FakeBalancer(["b1", "b2", "b3", "b4"])
    assert picks(a, lb, 6) == ["b1", "b2", "b3", "b4", "b1", "b2"]
    lb.usable, lb.usable_set = ("b1", "b3", "b4"), frozenset({"b1", "b3", "b4"})
    c = Counter(picks(a, lb, 30))
    assert set(c.values()) == {10}


def test_sticky_rr_piles_onto_the_successor_of_an_unusable_backend():
    a = algo("round_robin", ["b1", "b2", "b3"], mutations=["sticky_rr"])
    lb = FakeBalancer(["b1", "b2", "b3"])
    lb.usable, lb.usable_set = ("b1", "b3"), frozenset({"b1", "b3"})
    c = Counter(picks(a, lb, 30))
    assert c["b3"] - c["b1"] > 1


def test_least_connections_picks_a_least_loaded_one_ties_at_random():
    a = algo("least_connections", ["b1", "b2", "b3"])
    lb = FakeBalancer(["b1", "b2", "b3"])
    lb.in_flight.update(b1=3, b2=1, b3=1)
    got = Counter(picks(a, lb, 200))
    assert set(got) == {"b2", "b3"} and min(got.values()) > 60
    b, told = a.pick(lb, "k")
    assert told == {"seen": {"b1": 3, "b2": 1, "b3": 1}}


def test_least_connections_picks_the_same_whether_or_not_its_records_are_read():
    """Unread, the pick skips its evidence (`seen`), and nothing else: the same backends from
    the same draws, tie after tie, and an RNG left in the same state."""
    backends = [f"b{i}" for i in range(1, 9)]
    runs = []
    for recording in (True, False):
        a = algo("least_connections", backends)
        lb = FakeBalancer(backends, seed=7)
        lb.recording = recording
        got = []
        for i in range(300):
            lb.in_flight[backends[i * 5 % 8]] = i % 3  # ties of 1 to 8 backends, and none
            b, told = a.pick(lb, "k")
            assert (told is not None) == recording
            got.append(b)
        runs.append((got, lb.rng.random()))
    assert runs[0] == runs[1]
    assert len(set(runs[0][0])) > 4


def test_weighted_least_connections_counts_per_weight():
    a = algo("weighted_least_connections", ["b1", "b2"])
    lb = FakeBalancer(["b1", "b2"], {"b1": 4, "b2": 1})
    lb.in_flight.update(b1=3, b2=1)  # 0.75 per weight against 1
    assert set(picks(a, lb, 20)) == {"b1"}


def test_power_of_two_choices_beats_one_random_choice_over_200_seeds():
    """Mitzenmacher: n balls into n bins, the fullest bin holds about ln n / ln ln n with one
    random choice and ln ln n / ln 2 + O(1) with the less full of two."""
    n = 100
    backends = [f"b{i}" for i in range(1, n + 1)]
    wins = losses = 0
    total = {"random": 0, "power_of_d": 0}
    for seed in range(200):
        maxima = {}
        for name in total:
            a, lb = algo(name, backends), FakeBalancer(backends, seed=seed)
            for i in range(n):
                b, _ = a.pick(lb, None)
                lb.in_flight[b] += 1
            maxima[name] = max(lb.in_flight.values())
            total[name] += maxima[name]
        wins += maxima["power_of_d"] < maxima["random"]
        losses += maxima["power_of_d"] > maxima["random"]
    assert total["power_of_d"] / 200 < 3.2 < 4 < total["random"] / 200
    assert wins >= 180 and losses == 0  # strictly lower in 90% of the seeds, never higher


def test_p2c_scan_all_sometimes_takes_the_more_loaded():
    a = algo("power_of_d", ["b1", "b2", "b3"], mutations=["p2c_scan_all"])
    lb = FakeBalancer(["b1", "b2", "b3"])
    lb.in_flight.update(b1=0, b2=5, b3=5)
    got = Counter(picks(a, lb, 200))
    assert got["b1"] < 170 and got["b2"] + got["b3"] > 30


def test_consistent_hashing_moves_about_one_nth_of_the_keys():
    """Removing one of N = 10 backends moves exactly the keys it owned and no others; their
    share is 1/N within +-40% (100 virtual nodes: a backend's arc varies by about 10%, with
    room for the keys' own sampling)."""
    backends = [f"b{i}" for i in range(1, 11)]
    keys = [f"k{i}" for i in range(20_000)]
    from engine.protocols.lb.hashing import hash64
    before = Ring(backends, 100)
    after = Ring([b for b in backends if b != "b3"], 100)
    moved = [k for k in keys if before.owner(hash64(k)) != after.owner(hash64(k))]
    assert all(before.owner(hash64(k)) == "b3" for k in moved)
    assert 0.06 <= len(moved) / len(keys) <= 0.14


def test_bounded_loads_spill_a_hot_key_past_its_cap():
    a = algo("consistent_hash", ["b1", "b2", "b3", "b4"], bounded_load=1.25)
    lb = FakeBalancer(["b1", "b2", "b3", "b4"])
    for _ in range(40):  # one hot key, nothing completes
        b, told = a.pick(lb, "hot")
        assert lb.in_flight[b] < told["cap"]
        lb.in_flight[b] += 1
    assert max(lb.in_flight.values()) <= -(-1.25 * 40 // 4)
    plain = algo("consistent_hash", ["b1", "b2", "b3", "b4"])
    assert len({plain.pick(lb, "hot")[0] for _ in range(10)}) == 1


@pytest.mark.parametrize("n, size", [(3, 65537), (10, 65537), (7, 251), (20, 2039)])
def test_maglev_table_is_balanced_within_one_entry(n, size):
    """Eisenbud et al. §3.4: backends claim slots in turns, so counts are floor or ceil of M/N."""
    table = maglev_table([f"b{i}" for i in range(1, n + 1)], size)
    counts = Counter(table)
    assert len(table) == size and -1 not in counts and len(counts) == n
    assert max(counts.values()) - min(counts.values()) <= 1


def test_maglev_disrupts_little_when_a_backend_leaves():
    backends = [f"b{i}" for i in range(1, 11)]
    before = [backends[i] for i in maglev_table(backends, 65537)]
    rest = [b for b in backends if b != "b4"]
    after = [rest[i] for i in maglev_table(rest, 65537)]
    kept_elsewhere = [x != y for x, y in zip(before, after) if x != "b4"]
    assert sum(kept_elsewhere) / len(kept_elsewhere) < 0.05  # the paper's Figure 12: a few %


def test_peak_ewma_prefers_the_backend_with_lower_latency():
    a = algo("peak_ewma", ["b1", "b2"], choices=2)
    lb = FakeBalancer(["b1", "b2"])
    a.observe("b1", 200.0, 0)
    a.observe("b2", 10.0, 0)
    lb.now_us = 1000
    assert set(picks(a, lb, 10)) == {"b2"}
    lb.in_flight.update(b2=40)  # (40 + 1) x 10 > 200
    assert a.pick(lb, "k")[0] == "b1"
