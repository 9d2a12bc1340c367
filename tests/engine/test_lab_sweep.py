"""`playground sweep`: the grid, the rows in seed order, identical tables whoever runs them (1 or 2
local processes, a Dask cluster), resuming after an interruption, share links to failing runs,
and one clear error line (exit 2) for bad input."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import orjson
import pytest

from app.cli import main
from app.share import decode
from engine.sim import Simulation
from engine.sweep import Grid, SweepError, parse_int_list, parse_set, stats

from .helpers import SCENARIOS

NEMESIS = str(SCENARIOS / "nemesis.json")
BUG = str(SCENARIOS / "figure8_bug.json")
# A small grid: 6 seeds x 2 node counts x 2 heartbeat values, 1.5 s runs with the nemesis.
GRID = ["--seeds", "0..5", "--nodes", "3,5", "--set", "duration_ms=1500",
        "--set", "config.heartbeat_ms=40,60", "--measure", "commit_latency_ms",
        "--measure", "leader_changes"]


def sweep(capsys, *args) -> tuple[int, str, str]:
    rc = main(["sweep", *args])
    out, err = capsys.readouterr()
    return rc, out, err


def rows(path) -> list[dict]:
    return [orjson.loads(x) for x in path.read_bytes().splitlines()]


def test_rows_in_seed_order_with_every_column(tmp_path, capsys):
    out = tmp_path / "r.jsonl"
    rc, text, err = sweep(capsys, NEMESIS, *GRID, "--workers", "2", "--out", str(out))
    assert rc == 0, err
    rs = rows(out)
    assert len(rs) == 6 * 2 * 2
    assert [(r["seed"], r["nodes"], r["config.heartbeat_ms"]) for r in rs] == [
        (s, n, h) for s in range(6) for n in (3, 5) for h in (40, 60)]
    r = rs[0]
    assert list(r)[:4] == ["seed", "duration_ms", "config.heartbeat_ms", "nodes"]
    assert list(r)[-2:] == ["commit_latency_ms", "leader_changes"]
    for k in ("events", "sim_ms", "violations", "linearizable", "ops", "roles"):
        assert k in r
    assert "wall_s" not in r and "speedup" not in r  # wall-clock: would differ between runs
    assert all(r["sim_ms"] == 1500 and len(r["roles"]) == r["nodes"] for r in rs)
    # The CSV beside it: a header and one line per run, objects flattened.
    csv = (tmp_path / "r.csv").read_text().splitlines()
    assert len(csv) == 1 + len(rs)
    assert csv[0].startswith("seed,duration_ms,config.heartbeat_ms,nodes,protocol,events,sim_ms,ops.invoke")
    assert csv[0].endswith("violations,linearizable,leader_after_heal_ms,commit_latency_ms,leader_changes")
    # The printed summary: one block per grid point, the measures' statistics.
    assert "4 worker" not in text and "2 worker processes" in text
    assert "nodes=3 duration_ms=1500 config.heartbeat_ms=40: 6 runs, 0 with violations" in text
    assert text.count("  commit_latency_ms: count ") == 4
    assert "failing runs" not in text


def test_same_table_from_one_or_two_processes_or_dask(tmp_path, capsys):
    distributed = pytest.importorskip("dask.distributed")
    got = {}
    for name, how in (("w1", ["--workers", "1"]), ("w2", ["--workers", "2"])):
        rc, _, err = sweep(capsys, NEMESIS, *GRID, *how, "--out", str(tmp_path / f"{name}.jsonl"))
        assert rc == 0, err
        got[name] = (tmp_path / f"{name}.jsonl").read_bytes()
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                  dashboard_address=None) as cluster:
        rc, text, err = sweep(capsys, NEMESIS, *GRID, "--scheduler", cluster.scheduler_address,
                              "--out", str(tmp_path / "dask.jsonl"))
    assert rc == 0, err
    assert "Dask at tcp://" in text
    got["dask"] = (tmp_path / "dask.jsonl").read_bytes()
    assert got["w1"] == got["w2"] == got["dask"]
    assert (tmp_path / "w1.csv").read_bytes() == (tmp_path / "dask.csv").read_bytes()


def test_restart_continues_where_it_stopped(tmp_path, capsys):
    full = tmp_path / "full.jsonl"
    assert sweep(capsys, NEMESIS, *GRID, "--workers", "2", "--out", str(full))[0] == 0
    whole = full.read_bytes()
    lines = whole.splitlines(keepends=True)
    # What a kill leaves: the rows written so far and the next one cut short.
    part = tmp_path / "part.jsonl"
    part.write_bytes(b"".join(lines[:7]) + lines[7][:25])
    (tmp_path / "part.jsonl.sweep").write_bytes((tmp_path / "full.jsonl.sweep").read_bytes())
    rc, text, err = sweep(capsys, NEMESIS, *GRID, "--workers", "2", "--out", str(part))
    assert rc == 0, err
    assert "(7 already in" in text and "17 run now" in text
    assert part.read_bytes() == whole
    # Run again on the finished file: nothing to do, same file.
    rc, text, _ = sweep(capsys, NEMESIS, *GRID, "--out", str(part))
    assert rc == 0 and "0 run now" in text and part.read_bytes() == whole
    # Another sweep's file is refused, not mixed with.
    rc, _, err = sweep(capsys, NEMESIS, "--seeds", "3..9", "--set", "duration_ms=1500", "--out", str(part))
    assert rc == 2 and "written by another sweep" in err and part.read_bytes() == whole
    # ... and so is another scenario's with the very same grid (rows alone could not tell).
    other = tmp_path / "other.json"
    data = orjson.loads(open(NEMESIS, "rb").read())
    data["config"] = {**data.get("config", {}), "heartbeat_ms": 20}
    other.write_bytes(orjson.dumps(data))
    cut = tmp_path / "cut.jsonl"
    cut.write_bytes(b"".join(lines[:2]))
    (tmp_path / "cut.jsonl.sweep").write_bytes((tmp_path / "full.jsonl.sweep").read_bytes())
    rc, _, err = sweep(capsys, str(other), *GRID, "--out", str(cut))
    assert rc == 2 and "written by another sweep" in err and cut.read_bytes() == b"".join(lines[:2])


@pytest.mark.parametrize("how", [signal.SIGKILL, signal.SIGINT, signal.SIGTERM])
def test_killed_or_stopped_and_rerun_gives_the_uninterrupted_file(tmp_path, capsys, how):
    args = [NEMESIS, "--seeds", "0..119", "--set", "duration_ms=1500", "--workers", "2"]
    whole = tmp_path / "whole.jsonl"
    assert sweep(capsys, *args, "--out", str(whole))[0] == 0
    out = tmp_path / "killed.jsonl"
    p = subprocess.Popen([sys.executable, "-m", "app.cli", "sweep", *args, "--out", str(out)],
                         stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                         start_new_session=True)
    deadline = time.monotonic() + 120
    while p.poll() is None and (not out.exists() or out.stat().st_size == 0):
        assert time.monotonic() < deadline, "the sweep wrote nothing in 2 minutes"
        time.sleep(0.01)
    # SIGKILL: the whole group, the pool's workers too. SIGINT (Ctrl-C reaches the whole group)
    # and SIGTERM (to the command): it stops its pool and says how to continue.
    if how == signal.SIGTERM:
        os.kill(p.pid, how)
    else:
        os.killpg(p.pid, how)
    _, err = p.communicate(timeout=60)
    if how != signal.SIGKILL and p.returncode != 0:  # 0: it had finished before the signal
        assert p.returncode == 130 and "rerun the same command to continue" in err, err
    assert sweep(capsys, *args, "--out", str(out))[0] == 0
    assert out.read_bytes() == whole.read_bytes()


def test_failing_runs_are_listed_with_a_link_that_reproduces_them(tmp_path, capsys):
    out = tmp_path / "bug.jsonl"
    rc, text, _ = sweep(capsys, BUG, "--seeds", "0..2", "--workers", "1", "--out", str(out),
                        "--base-url", "https://example.org/")
    assert rc == 3  # as `simulate`: a safety check failed
    assert "all runs: 3 runs, 3 with violations" in text and "failing runs (3):" in text
    links = [w for w in text.split() if w.startswith("https://example.org/?share=")]
    assert len(links) == 3
    first = rows(out)[0]
    scn, t, _ = decode(links[0].split("share=", 1)[1])
    assert scn.seed == first["seed"] == 0 and t == first["violations"][0]["t"]
    sim = Simulation(scn)  # the link's run breaks the same invariant at the same moment
    sim.run_until(t)
    seen = [v for c in sim.checkers for v in c.violations]
    assert seen and seen[0]["invariant"] == first["violations"][0]["invariant"]
    rc, text, _ = sweep(capsys, BUG, "--seeds", "0", "--workers", "1", "--out", str(tmp_path / "b.jsonl"))
    assert " /?share=1." in text  # path-only without --base-url


@pytest.mark.parametrize("args, says", [
    (["--seeds", "9..3"], "--seeds: '9..3' is an empty range"),
    (["--seeds", "0..x"], "--seeds: 'x' is not a whole number"),
    (["--seeds", "0..3", "--nodes", "0"], "--nodes: 0 is below 1"),
    (["--seeds", "0..3", "--measure", "nope"],
     "--measure nope: unknown measure for raft (known: broadcast_time_ms, commit_latency_ms, election_downtime_ms, leader_changes"),
    (["--seeds", "0..3", "--set", "config.electon_timeout=1,2"], "config.electon_timeout: unknown field"),
    (["--seeds", "0..3", "--set", "config.heartbeat_ms=-5"], "config.heartbeat_ms=-5: config.heartbeat_ms:"),
    (["--seeds", "0..3", "--set", "duration_ms"], "--set 'duration_ms': write NAME=VALUE"),
    (["--seeds", "0..3", "--set", "seed=1,2"], "--set seed: use --seeds"),
    (["--seeds", "0..3", "--workers", "0"], "--workers: at least 1"),
    (["--seeds", "0..3", "--scheduler", "foo:bar:baz"], "--scheduler foo:bar:baz: cannot connect"),
])
def test_bad_input_is_one_line_and_exit_2(tmp_path, capsys, args, says):
    out = tmp_path / "r.jsonl"
    rc, text, err = sweep(capsys, NEMESIS, *args, "--out", str(out))
    assert rc == 2 and text == ""
    assert err.count("\n") == 1 and says in err, err
    assert not out.exists()


def test_a_missing_scenario_file_is_named(tmp_path, capsys):
    rc, _, err = sweep(capsys, str(tmp_path / "nope.json"), "--seeds", "0..3")
    assert rc == 2 and "cannot read scenario" in err and "nope.json" in err and err.count("\n") == 1


def test_the_pure_parts():
    assert parse_int_list("0..3,7", "--seeds") == [0, 1, 2, 3, 7]
    with pytest.raises(SweepError, match="given twice"):
        parse_int_list("1..3,2", "--seeds")
    assert parse_set("config.pre_vote=true,false") == ("config.pre_vote", [True, False])
    assert parse_set("workload.kind=kv") == ("workload.kind", ["kv"])
    g = Grid(seeds=(1, 2), nodes=(3, 5), sets=(("x", (1, 2, 3)),))
    assert len(g) == 12 and list(g.jobs())[:4] == [(1, (3, 1)), (1, (3, 2)), (1, (3, 3)), (1, (5, 1))]
    s = stats([None, 4.0, 1.0, 3.0, 2.0])
    assert s == {"count": 4, "missing": 1, "median": 2.5, "p90": 3.7, "p99": 3.97, "max": 4.0}
