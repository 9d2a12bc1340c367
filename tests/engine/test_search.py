"""Counterexample search (engine/search.py): each strategy finds a mutation's break within a bound
counted in runs or states (never seconds), the scenario it writes replays the violation under
`run_scenario` with no nemesis, the same inputs give the same result, and a configuration
without a mutation is not flagged within a small bound."""

import json

import pytest

from engine import search
from engine.run import run_scenario
from engine.scenario import parse_scenario
from engine.sim import Simulation

from .helpers import SCENARIOS

SEARCH = SCENARIOS / "search"


def base(name: str):
    return parse_scenario((SEARCH / f"{name}.json").read_bytes())


def replays(found: search.Found) -> set[str]:
    scn = parse_scenario(found.scenario)
    assert scn.nemesis is None
    return {v["invariant"] for v in run_scenario(scn)["violations"]}


def test_random_turns_the_nemesis_faults_into_actions_that_replay():
    r = search.random_search(base("zk.propose_to_acked_only"), "propose_to_acked_only", runs=20)
    assert r.found is not None and r.unit == "runs" and 1 <= r.explored <= 20
    f = r.found
    assert "nemesis" not in f.scenario and f.scenario["duration_ms"] == f.t
    assert f.scenario["config"]["mutations"] == ["propose_to_acked_only"]
    assert f.scenario["actions"] and {a["do"] for a in f.scenario["actions"]} <= {
        "crash", "restart", "pause", "resume", "partition", "cut", "heal", "set_link"}
    assert f.invariant in replays(f)
    # minimised: leaving out any one of its faults loses the violation
    for i in range(len(f.scenario["actions"])):
        cand = dict(f.scenario, actions=f.scenario["actions"][:i] + f.scenario["actions"][i + 1:])
        assert search.reproduces(cand, f.invariant) is None


def test_explore_breadth_first_finds_a_short_counterexample():
    r = search.explore(base("paxos.learn_without_majority"), "learn_without_majority",
                       max_states=2000, bfs_states=2000)
    assert r.found is not None and r.stats["walks"] == 0 and r.explored <= 2000
    f = r.found
    acts = f.scenario["actions"]
    assert acts[:2] == [{"at": 0.0, "do": "manual", "on": True},
                        {"at": 0.0, "do": "set_link", "from": "*", "to": "*", "both": True,
                         "latency_ms": [0.0, 0.0]}]
    assert {a["do"] for a in acts[2:]} <= {"deliver", "fire", "crash", "restart"}
    assert f.invariant == "Learned Is Chosen" and f.invariant in replays(f)
    # breadth first: nothing shorter breaks it (every prefix replays clean)
    shorter = dict(f.scenario, actions=acts[:-1])
    assert search.reproduces(shorter, f.invariant) is None


def test_explore_random_walks_find_a_deep_counterexample_deterministically():
    scn = base("raft.vote_without_log_check")
    a = search.explore(scn, "vote_without_log_check", max_states=20_000, bfs_states=0, seed=3)
    b = search.explore(scn, "vote_without_log_check", max_states=20_000, bfs_states=0, seed=3)
    assert a.found is not None and a.stats["walks"] >= 1
    assert a.as_dict() == b.as_dict()
    assert a.found.invariant in replays(a.found)


@pytest.mark.parametrize("name", ["paxos.learn_without_majority", "raft.forget_vote_on_restart"])
def test_without_the_mutation_nothing_is_flagged(name):
    scn = base(name)
    assert search.explore(scn, None, max_states=1500, bfs_states=500).found is None
    assert search.random_search(scn, None, runs=5).found is None


def test_a_stop_ends_the_search_early_and_unknown_mutations_are_refused():
    scn = base("paxos.learn_without_majority")
    calls = []
    r = search.explore(scn, "learn_without_majority", max_states=10**6,
                       stop=lambda: calls.append(1) or len(calls) > 5)
    assert r.found is None and r.explored == 5
    with pytest.raises(search.SearchError, match="mutation: paxos has no mutation 'nope' "
                                                 r"\(known: accept_lower_ballot, "):
        search.with_mutation(scn, "nope")


def test_the_state_digest_ignores_message_ids_so_commuting_deliveries_meet():
    scn = search.explore_start(base("raft.forget_vote_on_restart"))
    sim = Simulation(scn)
    sim.run_until(0)
    fire = next(c for c in search.choices(sim, 0) if c["do"] == "fire")
    search.apply_choice(sim, fire)
    first, second = [c for c in search.choices(sim, 0) if c["do"] == "deliver"][:2]
    ab, ba = Simulation.restore(sim.snapshot()), Simulation.restore(sim.snapshot())
    for s, order in ((ab, (first, second)), (ba, (second, first))):
        for c in order:
            search.apply_choice(s, c)
    assert ab.digest() != ba.digest()  # the replies got different ids
    assert search.state_digest(ab) == search.state_digest(ba)


class Ran:
    def __init__(self, code, out, err):
        self.returncode, self.stdout, self.stderr = code, out, err


@pytest.fixture
def pg(capsys):
    """`playground ARGS...` in this process (the CLI's own process start is tested in test_cli)."""
    from app.cli import main

    def run(*args):
        code = main(list(args))
        out, err = capsys.readouterr()
        return Ran(code, out, err)

    return run


def test_cli_prints_the_counterexample_and_its_link_and_simulate_replays_it(pg, tmp_path):
    out = tmp_path / "found.json"
    r = pg("search", str(SEARCH / "paxos.learn_without_majority.json"), "--mutation",
           "learn_without_majority", "--max-states", "2000", "--out", str(out))
    assert r.returncode == 0, r.stderr
    s = json.loads(r.stdout)
    assert s["found"] is True and s["invariant"] == "Learned Is Chosen" and s["explored"] <= 2000
    assert s["share"].startswith("/?share=1.") and s["t"] > 0
    for k in ("states_per_s", "max_rss_mb", "elapsed_s", "scenario"):
        assert k in s
    from app import share

    scn, t, _ = share.decode(s["share"][len("/?share="):])
    want = parse_scenario(s["scenario"]).to_dict()
    del want["notes"]  # a share link leaves the notes out
    assert scn.to_dict() == want and t == s["t"]
    sim = pg("simulate", str(out))
    assert sim.returncode == 3, sim.stderr
    assert "Learned Is Chosen" in {v["invariant"] for v in json.loads(sim.stdout)["violations"]}
    r = pg("search", str(SEARCH / "paxos.learn_without_majority.json"), "--mutation",
           "learn_without_majority", "--strategy", "random", "--max-runs", "3",
           "--base-url", "http://localhost:8000/")
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["share"].startswith("http://localhost:8000/?share=1.")


def test_cli_refuses_bad_input_and_says_not_found(pg):
    path = str(SEARCH / "paxos.learn_without_majority.json")
    r = pg("search", path, "--mutation", "nope")
    assert r.returncode == 2 and "no mutation 'nope'" in r.stderr
    r = pg("search", path, "--mutation", "learn_without_majority", "--max-states", "0")
    assert r.returncode == 2 and "--max-states: must be positive" in r.stderr
    r = pg("search", str(SEARCH / "absent.json"), "--mutation", "x")
    assert r.returncode == 2 and "cannot read scenario" in r.stderr
    r = pg("search", str(SEARCH / "raft.forget_vote_on_restart.json"), "--mutation",
           "forget_vote_on_restart", "--max-states", "30", "--bfs-states", "30")
    assert r.returncode == 1, r.stderr
    s = json.loads(r.stdout)
    assert s["found"] is False and s["share"] is None and s["explored"] == 30


@pytest.mark.slow
@pytest.mark.parametrize("path", sorted(p.name for p in SEARCH.glob("*.json")))
def test_every_mutation_is_found_by_one_strategy(path):
    """Every mutation of every protocol, on its search configuration (minutes: --sweep)."""
    mutation = path.split(".")[1]
    scn = base(path[:-len(".json")])
    r = search.random_search(scn, mutation, runs=1500)
    if r.found is None:
        r = search.explore(scn, mutation, max_states=600_000, bfs_states=2000)
    assert r.found is not None, f"{mutation}: not found"
    assert r.found.invariant in replays(r.found)


@pytest.mark.slow
def test_figure_8_is_found_from_a_five_server_start():
    """The paper's Figure 8 with `commit_previous_term`, with no choreography: the exploration's
    walks (seed 0, after 2000 breadth-first states) reach it at state 509,466."""
    scn = base("raft.commit_previous_term")
    r = search.explore(scn, "commit_previous_term", max_states=509_466, bfs_states=2000)
    assert r.found is not None and r.found.invariant == "Leader Completeness"
    assert r.found.invariant in replays(r.found)
    clean = dict(r.found.scenario, config=dict(r.found.scenario["config"], mutations=[]))
    assert not run_scenario(parse_scenario(clean))["violations"]  # the mutation is the cause


def test_explore_refuses_a_storage_latency_it_does_not_model():
    from engine.search import SearchError, explore
    sc = parse_scenario({"nodes": 3, "storage": {"latency_ms_min": 1, "latency_ms_max": 2}})
    with pytest.raises(SearchError, match="storage: the explore strategy does not model storage latency"):
        explore(sc, max_states=10)
