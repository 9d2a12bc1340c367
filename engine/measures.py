"""Named measures: protocol-provided observers that turn one run into one number.

A measure is what `playground sweep --measure NAME` (and the page's Experiments tab) reports per
run. Each protocol lists its measures in `ProtocolSpec.measures` ({name: Measure subclass}); the
generic code knows a measure only through this interface:

    m = MeasureClass(topology, config, scenario)   # before the run starts
    sim.subscribe(m, messages=m.messages)          # it sees records like any observer
    ... the run ...
    m.value()                                      # float, or None when the run never got there

A measure only observes (like a checker): it never acts on the world. A measure that needs a
particular experiment (e.g. a node crashed at a random point of a protocol's period) says so
in its docstring and relies on the scenario to stage it (a lesson's actions), never on its own
actions.
"""

from __future__ import annotations

from typing import Any


class Measure:
    name: str = "?"
    unit: str = ""          # "ms", "requests", "" for a count
    doc: str = ""           # one sentence: what it measures
    messages: bool = False  # True to also receive send/deliver/drop records

    def __init__(self, topology: Any, config: Any, scenario: Any) -> None:
        self.topology = topology
        self.config = config
        self.scenario = scenario

    def __call__(self, rec: dict) -> None:
        """One record of the run."""

    def value(self) -> float | None:
        """The run's figure, or None when the run never reached what it measures."""
        return None


def measures_of(spec: Any) -> dict[str, type[Measure]]:
    return dict(getattr(spec, "measures", {}) or {})


__all__ = ["Measure", "measures_of"]
