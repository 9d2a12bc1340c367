"""The Paxos lessons (scenarios/paxos_*.json): each file runs, and shows what its notes say, at the
instants they name."""

import pytest

from engine.protocols.paxos.ballot import as_ballot
from engine.scenario import parse_scenario
from engine.sim import Simulation

from ..helpers import load


class Chosen:
    """Every (t, slot, value, ballot) the first time a value is chosen, from the mirror checker
    (the acceptors' states, not the learners')."""

    def __init__(self, name: str, until_ms: float = 5000):
        self.sim = sim = Simulation(parse_scenario(load(name)))
        self.records: list[dict] = []
        sim.subscribe(self.records.append)
        mirror = sim.checkers[0]
        self.chosen: list[tuple] = []
        seen = set()
        while sim.step() and sim.now_ms <= until_ms:
            for slot, by_value in mirror.chosen.items():
                for k, b in by_value.items():
                    if (slot, k) not in seen:
                        seen.add((slot, k))
                        self.chosen.append((sim.now_ms, slot, mirror.values[k], b))

    def values(self, slot: int = 0) -> list:
        return [v for _, s, v, _ in self.chosen if s == slot]

    def broken(self) -> set[str]:
        return {v["invariant"] for v in self.sim.violations}

    def learned(self, slot: int = 0) -> dict:
        return {n: self.sim.nodes[n].learned.get(slot) for n in self.sim.servers}

    def sends(self, kind: str, src: str | None = None) -> list[dict]:
        return [r for r in self.records if r["type"] == "send" and r["msg"]["kind"] == kind
                and (src is None or r["from"] == src)]


def test_clean_single_decree_run():
    run = Chosen("paxos_clean")
    assert run.chosen == [(31.937, 0, "x", (1, "n1"))]
    assert run.learned() == {"n1": "x", "n2": "x", "n3": "x"} and not run.broken()


def test_the_second_proposer_adopts_the_first_ones_value():
    run = Chosen("paxos_adopt_value")
    assert run.chosen == [(31.937, 0, "x", (1, "n1"))]
    accepts = run.sends("Accept", "n3")
    assert accepts and {(tuple(a["msg"]["ballot"]), a["msg"]["value"]) for a in accepts} == {((2, "n3"), "x")}
    promise = next(r for r in run.sends("Promise") if r["to"] == "n3" and r["msg"]["accepted"])
    assert promise["msg"]["accepted"]["0"] == [[1, "n1"], "x"]
    assert set(run.learned().values()) == {"x"} and not run.broken()


def test_dueling_proposers_livelock_without_backoff():
    run = Chosen("paxos_duel_livelock", until_ms=5000)
    assert run.chosen == [] and not run.broken()
    assert min(run.sim.nodes[n].max_round for n in ("n1", "n2")) > 100


def test_backoff_cures_the_duel():
    run = Chosen("paxos_duel_backoff")
    assert run.chosen == [(33.815, 0, "y", (1, "n2"))]
    assert set(run.learned().values()) == {"y"} and not run.broken()


def test_multi_paxos_leader_crash_gap_filled_by_a_no_op():
    run = Chosen("paxos_multi_leader_crash", until_ms=3000)
    first_leader = next(r for r in run.records if r["type"] == "state" and r["role"][0] == "leader")
    assert first_leader["node"] == "n2" and first_leader["ballot"] == [1, "n2"]
    assert [(s, v if v is None else v["value"]) for _, s, v, _ in run.chosen] == [(0, 1), (2, 3), (1, None)]
    t, slot, value, ballot = run.chosen[-1]
    noop = next(r for r in run.sends("Accept", "n3") if r["msg"]["slot"] == 1)
    assert noop["t"] == 1379.792 and noop["msg"]["value"] is None and as_ballot(noop["msg"]["ballot"]) == (2, "n3")
    assert ballot == (2, "n3") and t > noop["t"]
    sim = run.sim
    assert all(sim.nodes[n].store.kv == {"k1": 3} for n in sim.servers)
    user = [(r["req"], r["op"]) for r in run.records if r["type"] == "client" and r["op"] != "invoke"]
    assert user == [(1, "ok"), (2, "info"), (3, "info")]
    assert not run.broken() and sim.checkers[-1].check() is True


@pytest.mark.parametrize("name,t_ms,broken,chosen", [
    ("accept_lower_ballot", 32.758, {"At Most One Chosen", "Promise Kept"},
     [(34.922, "y"), (49.277, "x")]),
    ("ignore_promised_values", 78.248, {"At Most One Chosen"}, [(31.937, "x"), (78.248, "y")]),
    ("learn_without_majority", 23.669, {"Learned Is Chosen"}, None),
    ("quorum_minus_one", 22.958, {"Learned Is Chosen"}, None),
])
def test_each_mutation_breaks_safety(name, t_ms, broken, chosen):
    """The first violation at the instant the notes name; the same run without the mutation is
    safe."""
    run = Chosen(f"paxos_mutation_{name}")
    first = run.sim.violations[0]
    assert first["t"] == t_ms and run.broken() == broken
    if chosen is not None:  # two values chosen
        assert [(t, v) for t, _, v, _ in run.chosen] == chosen
    else:
        assert first["invariant"] == "Learned Is Chosen"
    if name == "quorum_minus_one":
        assert run.learned() == {"n1": "x", "n2": "y", "n3": "y"}
    clean = load(f"paxos_mutation_{name}")
    clean["config"] = {**clean["config"], "mutations": []}
    sim = Simulation(parse_scenario(clean))
    sim.run_until(5000)
    assert not sim.violations


def test_flexible_quorums_safe_when_they_intersect():
    run = Chosen("paxos_flexible_safe")
    assert run.chosen == [(1312.306, 0, "y", run.chosen[0][3])] and not run.broken()
    assert set(run.learned().values()) == {"y"}


def test_flexible_quorums_unsafe_when_they_do_not():
    run = Chosen("paxos_flexible_unsafe")
    assert [(t, v) for t, _, v, _ in run.chosen] == [(35.384, "y"), (42.473, "x")]
    assert run.broken() == {"At Most One Chosen"}
    assert run.learned() == {"n1": "x", "n2": "x", "n3": "y", "n4": "y", "n5": "y"}
