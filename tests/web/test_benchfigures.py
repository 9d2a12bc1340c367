"""The arithmetic of `playground bench --scale` and `--soak` (app/scalebench.py, app/soakbench.py):
the histogram behind their percentiles, the kill phase's verdict, and the soak's flatness test.
The benchmarks themselves run servers and take minutes; they are not in the suite."""

from __future__ import annotations

import random

from app.scalebench import Hist, _field, kill_figures, recipe_batches
from app.soakbench import flatness, slope
from app.webbench import _pct


def test_the_histogram_gives_the_same_percentiles_as_the_sorted_list_to_its_bin():
    rng = random.Random(3)
    xs = [rng.expovariate(1 / 30) - 1 for _ in range(5000)]
    h = Hist()
    for x in xs:
        h.add(x)
    assert len(h) == 5000
    for p in (0, 50, 90, 99, 100):
        assert abs(h.pct(p) - _pct(xs, p)) <= 0.051
    # Split over two processes and merged through JSON-shaped dumps: the same figures.
    a, b = Hist(), Hist()
    for i, x in enumerate(xs):
        (a if i % 2 else b).add(x)
    merged = Hist(a.dump()).merge(Hist(b.dump()))
    assert merged.dist() == h.dist()
    assert Hist().pct(99) is None


def test_a_frames_number_fields_are_read_without_decoding_it():
    frame = bytearray(b'{"seq":1234,"type":"events","t":1301.5,"w":1790000000123.4,"ev":[]}')
    assert _field(frame, 0, len(frame), b'"w":') == b"1790000000123.4"
    assert _field(frame, 0, len(frame), b'"t":') == b"1301.5"
    assert _field(frame, 0, len(frame), b'"digest":') is None


def test_the_kill_phase_counts_only_sessions_back_at_the_same_moment_digest_and_clicks():
    same = {"t": 900.0, "digest": "ab", "actions": 3}
    rows = [
        {"sid": "a", "final": same, "back": {"ms": 1100.0, **same}, "lost_at": 1002.0, "error": None},
        {"sid": "b", "final": same, "back": {"ms": 1200.0, **same, "digest": "cd"},
         "lost_at": 1003.0, "error": None},
        {"sid": "c", "final": same, "back": None, "lost_at": 1004.0, "error": "refused"},
        {"sid": "d", "final": None, "back": None, "lost_at": None, "error": None},
    ]
    k = kill_figures(rows, killed_ms=1000.0)
    assert k["sessions_on_killed_worker"] == 4 and k["back"] == 2
    assert k["same_t_digest_actions"] == 1
    assert [m["sid"] for m in k["mismatched"]] == ["b"]
    assert k["not_back_count"] == 2 and {m["sid"] for m in k["not_back"]} == {"c", "d"}
    assert k["kill_to_snapshot_ms"]["max"] == 200.0


def _samples(ys):
    return [{"minute": i, "rss_mb": {"worker_A": y, "worker_B": 100.0, "redis": 10.0,
                                     "redis_used_memory_mb": 2.0}} for i, y in enumerate(ys)]


def test_memory_is_flat_only_when_it_stops_growing_after_the_warm_up():
    assert slope([1.0, 2.0, 3.0]) == 1.0 and slope([5.0]) is None
    warm_then_flat = [60.0, 90.0, 120.0, 121.0, 120.5, 121.2, 120.8]
    f = flatness(_samples(warm_then_flat), warmup=2)
    assert f["worker_A"]["flat"] is True and f["worker_B"]["flat"] is True
    leaking = [120.0 + 2 * i for i in range(10)]
    f = flatness(_samples(leaking), warmup=2)
    assert f["worker_A"]["flat"] is False and f["worker_A"]["slope_mb_per_min"] == 2.0
    assert flatness(_samples([1.0, 2.0]), warmup=2)["worker_A"]["flat"] is None


def test_recipe_round_trips_per_click_add_both_workers_and_survive_a_missing_one():
    side = {"worker_A": {"recipe_writes": {"batches": 30, "recipes": 200}},
            "worker_B": {"recipe_writes": {"batches": 10, "recipes": 100}}, "worker_C": None}
    assert recipe_batches(side, 400) == {"recipe_round_trips_per_click": 0.1, "recipes_per_round_trip": 7.5}
    assert recipe_batches({"worker_A": None}, 0) == {"recipe_round_trips_per_click": None,
                                                     "recipes_per_round_trip": None}
