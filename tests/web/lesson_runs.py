"""Running a lesson scenario through an adapter, as the page's frames do: the helper the adapter
tests share (app/protocols/<p>.py, tests/web/test_<p>_adapter.py)."""

from __future__ import annotations

import json
from pathlib import Path

from engine.scenario import parse_scenario
from engine.sim import Simulation

SCENARIOS = Path(__file__).resolve().parents[2] / "scenarios"


def told_run(adapter, name: str, until_ms: float | None = None, **config):
    """Run the lesson `name` (its config updated by `config`) to `until_ms` (default its end);
    returns (sim, [(t, sentence)], {pill class: {labels}})."""
    d = json.loads((SCENARIOS / f"{name}.json").read_text())
    d["config"].update(config)
    return told_scenario(adapter, d, until_ms)


def told_scenario(adapter, d: dict, until_ms: float | None = None):
    """Run the scenario dict `d` as told_run runs a lesson (the same three things back)."""
    sim = Simulation(parse_scenario(d))
    told = {nid: adapter.told(v) for nid, v in sim.views().items()}
    words, pills = [], {}

    def obs(r):
        if r["type"] == "send":
            label, cls = adapter.msg_label(r["msg"])
            pills.setdefault(cls, set()).add(label)
        elif r["type"] not in ("deliver", "drop"):
            s = adapter.describe(r, told)
            if s:
                words.append((r["t"], s))

    sim.subscribe(obs, messages=True)
    sim.run_until(until_ms if until_ms is not None else d["duration_ms"])
    return sim, words, pills
