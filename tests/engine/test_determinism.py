"""Seed + scenario (+ actions) reproduce a run byte for byte."""

import orjson

from engine.scenario import parse_scenario
from engine.sim import Simulation


def _records(scn: dict, until_ms: float) -> bytes:
    sim = Simulation(parse_scenario(scn))
    out: list[bytes] = []
    sim.subscribe(lambda r: out.append(orjson.dumps(r)))
    sim.run_until(until_ms)
    return b"\n".join(out)


BASE = {"nodes": 5, "seed": 11, "duration_ms": 8000,
        "workload": {"clients": 3, "rate_per_s": 20, "keys": 3},
        "nemesis": {"interval_ms": 700, "heal_ms": 6000}}


def test_same_seed_same_bytes():
    a = _records(BASE, 8000)
    b = _records(BASE, 8000)
    assert len(a) > 10_000
    assert a == b


def test_different_seed_different_run():
    assert _records(BASE, 3000) != _records({**BASE, "seed": 12}, 3000)
