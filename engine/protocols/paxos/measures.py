"""Paxos's measure for sweeps (engine/measures.py): how long until a value is chosen."""

from __future__ import annotations

from ...measures import Measure
from .checkers import PaxosMirror


class ChooseTime(Measure):
    """When the first value was chosen, in ms since the run began: the moment q2 acceptors had
    accepted one value in one ballot ("Paxos Made Simple", §2.1-2.2; Voting.tla's ChosenAt),
    computed from the acceptors' own `state` records by the checkers' `PaxosMirror`, not from what
    any learner knows. Basic Paxos: the decree (slot 0); Multi-Paxos: the first slot chosen.
    Counted from t = 0, so a scenario that proposes later includes that wait. None when nothing
    was chosen."""

    name = "choose_ms"
    unit = "ms"
    doc = "time from the start until a quorum of acceptors first accepted one value"

    def __init__(self, topology, config, scenario):
        super().__init__(topology, config, scenario)
        self.mirror = PaxosMirror(scenario.seed, topology.of_kind("server"), config)
        self.chosen_ms: float | None = None

    def __call__(self, rec: dict) -> None:
        if self.chosen_ms is not None or rec["type"] != "state":
            return
        self.mirror.observe(rec)
        if self.mirror.newly_chosen:
            self.chosen_ms = rec["t"]

    def value(self) -> float | None:
        return self.chosen_ms


PAXOS_MEASURES = {ChooseTime.name: ChooseTime}
