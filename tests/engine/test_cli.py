"""The `playground` command: simulate, check, exit codes, bad input."""

import json
import subprocess
import sys

import orjson

from engine.trace import FORMAT

from .helpers import SCENARIOS


def pg(*args, check=False):
    return subprocess.run([sys.executable, "-m", "app.cli", *args], capture_output=True, text=True,
                          timeout=120)


def test_simulate_prints_a_summary_and_writes_a_trace(tmp_path):
    trace = tmp_path / "t.ndjson"
    r = pg("simulate", str(SCENARIOS / "nemesis.json"), "--seed", "3", "--duration-ms", "6000",
           "--trace", str(trace))
    assert r.returncode == 0, r.stderr
    s = json.loads(r.stdout)
    for k in ("events", "sim_ms", "wall_s", "violations", "linearizable"):
        assert k in s
    assert s["seed"] == 3 and s["sim_ms"] == 6000 and s["violations"] == [] and s["linearizable"] is True
    lines = trace.read_bytes().splitlines()
    head = orjson.loads(lines[0])
    assert head["type"] == "header" and head["format"] == FORMAT and head["seed"] == 3
    kinds = {orjson.loads(x)["type"] for x in lines[1:]}
    assert kinds == {"send", "deliver", "drop", "fault", "client", "state", "end"}
    assert orjson.loads(lines[-1]) == {"type": "end", "t": 6000.0}
    # and `check` agrees on the exported trace
    c = pg("check", str(trace))
    assert c.returncode == 0, c.stderr
    assert json.loads(c.stdout)["violations"] == []


def test_simulate_exits_3_on_a_safety_violation(tmp_path):
    r = pg("simulate", str(SCENARIOS / "figure8_bug.json"), "--trace", str(tmp_path / "bug.ndjson"))
    assert r.returncode == 3
    s = json.loads(r.stdout)
    assert {v["invariant"] for v in s["violations"]} >= {"State Machine Safety"}
    assert all(v["seed"] == 1 for v in s["violations"])
    c = pg("check", str(tmp_path / "bug.ndjson"))
    assert c.returncode == 3
    assert json.loads(c.stdout)["violations"] == s["violations"]


def test_same_seed_byte_identical_trace(tmp_path):
    for name in ("a", "b"):
        assert pg("simulate", str(SCENARIOS / "nemesis.json"), "--duration-ms", "4000", "--trace",
                  str(tmp_path / f"{name}.ndjson")).returncode == 0
    assert (tmp_path / "a.ndjson").read_bytes() == (tmp_path / "b.ndjson").read_bytes()


def test_bad_input_exits_2_with_a_clear_message(tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text('{"nodes": 5, "actions": [{"at": 1, "do": "crash", "node": "n7"}]}')
    r = pg("simulate", str(bad))
    assert r.returncode == 2 and "actions[0].node: unknown node 'n7'" in r.stderr
    r = pg("simulate", str(tmp_path / "missing.json"))
    assert r.returncode == 2 and "cannot read scenario" in r.stderr
    junk = tmp_path / "junk.ndjson"
    junk.write_text('{"type": "header", "format": "other"}\n')
    r = pg("check", str(junk))
    assert r.returncode == 2 and "format" in r.stderr
    junk.write_text(f'{{"type": "header", "format": "{FORMAT}", "protocol": "raft", "nodes": ["n1"], "seed": 1}}\n{{oops\n')
    r = pg("check", str(junk))
    assert r.returncode == 2 and "line 2" in r.stderr


def test_transcript_is_readable_lines(tmp_path):
    out = tmp_path / "t.txt"
    r = pg("simulate", str(SCENARIOS / "split_vote.json"), "--duration-ms", "400", "--transcript", str(out))
    assert r.returncode == 0
    text = out.read_text().splitlines()
    assert any("n1 candidate term=1" in x for x in text)
    assert any("n2 leader    term=2" in x for x in text)


def test_check_names_a_malformed_record(tmp_path):
    bad = tmp_path / "bad.ndjson"
    bad.write_text(f'{{"type": "header", "format": "{FORMAT}", "protocol": "raft", "nodes": ["n1"], "seed": 1}}\n'
                   '{"type": "state", "t": 1, "node": "n1", "role": "leader"}\n')
    r = pg("check", str(bad))
    assert r.returncode == 2 and "record 1" in r.stderr and "malformed" in r.stderr
