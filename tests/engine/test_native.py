"""The compiled engine (engine/native.py) against the pure-Python one: every scenario in
scenarios/ gives the same trace, byte for byte, and the same digests, in both; a snapshot
restored and run on reaches the same digest, in each, and across them. Skipped when there is no
compiled build of the current sources (`make native` builds one)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import shutil

import pytest

from engine import native

ROOT = Path(__file__).resolve().parents[2]

built = pytest.mark.skipif(
    not (native.build_dir() / "ok").exists(),
    reason="no compiled engine for these sources (make native, or .venv/bin/python "
           "tools/build_native.py, needs mypyc: pip install -e '.[native]')")


def _start(engine: str, snapshots: Path, *args: str) -> subprocess.Popen:
    env = dict(os.environ)
    env.pop("PLAYGROUND_ENGINE", None)
    if engine == "pure":
        env["PLAYGROUND_ENGINE"] = "pure"
    return subprocess.Popen([sys.executable, "-m", "tests.engine.native_probe", str(snapshots),
                             *args], cwd=ROOT, env=env, stdout=subprocess.PIPE, text=True)


def _result(proc: subprocess.Popen, engine: str) -> dict:
    out, _ = proc.communicate(timeout=300)
    assert proc.returncode == 0
    line, _, body = out.partition("\n")
    assert line == ("engine: compiled (mypyc)" if engine == "compiled"
                    else "engine: pure Python (PLAYGROUND_ENGINE=pure)")
    return json.loads(body)


@built
def test_every_scenario_gives_the_same_trace_and_digests_compiled_and_pure(tmp_path):
    (tmp_path / "c").mkdir()
    (tmp_path / "p").mkdir()
    runs = {"compiled": _start("compiled", tmp_path / "c"), "pure": _start("pure", tmp_path / "p")}
    got = {engine: _result(proc, engine) for engine, proc in runs.items()}  # (both at once)
    names = sorted(p.stem for p in (ROOT / "scenarios").glob("*.json"))
    assert set(names) < set(got["pure"])  # (and the probe's variants)
    names = sorted(got["pure"])
    for name in names:
        assert got["compiled"][name] == got["pure"][name], name
        assert got["pure"][name]["digest_after_restore"] == got["pure"][name]["digest"], name
    assert any(r["violations"] for r in got["pure"].values())  # (the mutation scenarios: checked)


@built
def test_a_snapshot_made_by_one_engine_restores_in_the_other(tmp_path):
    """A checkpoint taken by a compiled worker may be restored by a pure one, and back."""
    some = "lb_uniform_fleet,lb_retry_budget,clean_election,zk_lock_handover,chubby_failover"
    for d in "cp":
        (tmp_path / d).mkdir()
    _result(_start("compiled", tmp_path / "c", "--only", some), "compiled")
    pure = _result(_start("pure", tmp_path / "p", "--restore-from", str(tmp_path / "c"),
                          "--only", some), "pure")
    back = _result(_start("compiled", tmp_path / "c", "--restore-from", str(tmp_path / "p"),
                          "--only", some), "compiled")
    assert len(pure) == 5
    for name in pure:
        key = "digest_after_restoring_the_other_engines_snapshot"
        assert pure[name][key] == pure[name]["digest"], name
        assert back[name][key] == back[name]["digest"] == pure[name]["digest"], name


def test_any_change_to_an_engine_source_changes_the_build_key(tmp_path):
    """So no build made from other sources is ever loaded (engine/native.py)."""
    copy = tmp_path / "engine"
    shutil.copytree(ROOT / "engine", copy, ignore=shutil.ignore_patterns("__pycache__"))
    key = native.source_key(copy)
    assert key == native.source_key(ROOT / "engine")
    f = copy / "protocols" / "lb" / "backend.py"
    f.write_text(f.read_text() + "\n")
    assert native.source_key(copy) != key
    (copy / "protocols" / "lb" / "backend.py").unlink()
    assert native.source_key(copy) not in (key, native.source_key(ROOT / "engine"))


def test_without_a_build_of_its_sources_the_engine_runs_as_python(tmp_path):
    """A copy of the engine beside no `.native/`: the pure modules, said in one line."""
    shutil.copytree(ROOT / "engine", tmp_path / "engine",
                    ignore=shutil.ignore_patterns("__pycache__"))
    env = {k: v for k, v in os.environ.items() if k != "PLAYGROUND_ENGINE"}
    env["PYTHONPATH"] = str(tmp_path)
    code = ("import engine.sim, engine.native as n; print(engine.sim.__file__); "
            "print(n.describe())")
    out = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=env, text=True,
                         capture_output=True, check=True).stdout.splitlines()
    assert out == [str(tmp_path / "engine" / "sim.py"),
                   "engine: pure Python (no compiled build of these sources; make native builds one)"]
