"""Exports to other tools: ShiViz's vector-clock log and the client history for Jepsen (EDN) and
Porcupine (JSON). Each is checked against what the tool requires of it, from the run's trace."""

from __future__ import annotations

import io
import re

import orjson
import pytest

from engine.export import SHIVIZ_REGEX, ExportError, export
from engine.run import run_scenario
from engine.scenario import parse_scenario
from engine.trace import read_trace

from app.cli import main


def _trace(data: dict) -> tuple[dict, list[dict]]:
    buf = io.BytesIO()
    run_scenario(parse_scenario(data), trace=buf)
    head, recs = read_trace(buf.getvalue().splitlines())
    return head, list(recs)


NEMESIS = {"nodes": 3, "seed": 11, "duration_ms": 4000,
           "workload": {"clients": 2, "rate_per_s": 20, "keys": 2},
           "nemesis": {"interval_ms": 400, "faults": ["crash", "partition", "loss"], "heal_ms": 3000}}


def _shiviz_events(text: str) -> list[tuple[str, str, dict]]:
    lines = text.split("\n")
    assert lines[0] == SHIVIZ_REGEX and lines[1] == ""
    body = lines[2:-1]
    assert len(body) % 2 == 0
    out = []
    for ev, stamp in zip(body[::2], body[1::2]):
        m = re.fullmatch(r"(\S*) (\{.*\})", stamp)  # ShiViz's default expression, in Python's dialect
        assert m, stamp
        out.append((m.group(1), ev, orjson.loads(m.group(2))))
    return out


def test_shiviz_log_has_lawful_vector_clocks():
    head, recs = _trace(NEMESIS)
    events = _shiviz_events(b"".join(export("shiviz", head, recs)).decode())
    own: dict[str, int] = {}
    sent: dict[str, dict] = {}
    receives = 0
    for host, text, clock in events:
        # ShiViz's rule: a host's first event has its own entry 1, then +1 per event.
        assert clock[host] == own.get(host, 0) + 1, (host, text)
        own[host] = clock[host]
        m = re.search(r" send \S+ #(\d+) ", text)
        if m:
            sent[m.group(1)] = clock
        m = re.search(r" receive \S+ #(\d+) from", text)
        if m:
            receives += 1
            before = sent[m.group(1)]  # happened before: the receive's clock dominates the send's
            assert all(clock.get(h, 0) >= n for h, n in before.items())
    delivered = sum(r["type"] == "deliver" for r in recs)
    assert receives == delivered > 100
    faults = [r for r in recs if r["type"] == "fault" and r.get("node")]
    assert faults and sum(" by nemesis" in t for _, t, _ in events) >= len(faults)
    assert any(" becomes leader" in t for _, t, _ in events)


EDN_OP = re.compile(r'\{:type :(invoke|ok|fail|info), :f :(read|write|cas), '
                    r':value \[("[^"]*") (nil|-?\d+|\[-?\d+ -?\d+\])\], :process (\d+), '
                    r':time (\d+), :index (\d+)\}')


def test_jepsen_history_is_edn_and_retires_a_process_after_info():
    head, recs = _trace(NEMESIS)
    lines = b"".join(export("jepsen", head, recs)).decode().splitlines()
    client = [r for r in recs if r["type"] == "client"]
    assert len(lines) == len(client) > 20
    last_time, procs_open, retired = -1, {}, set()
    for i, line in enumerate(lines):
        m = EDN_OP.fullmatch(line)
        assert m, line
        typ, proc, t, idx = m.group(1), int(m.group(5)), int(m.group(6)), int(m.group(7))
        assert idx == i and t >= last_time
        last_time = t
        assert proc not in retired, f"process {proc} called after an info"
        if typ == "invoke":
            assert proc not in procs_open  # one call at a time per process
            procs_open[proc] = True
        else:
            assert procs_open.pop(proc)
            if typ == "info":
                retired.add(proc)
    assert retired, "the nemesis run should have timed-out calls"


def test_porcupine_history_keeps_completed_and_unknown_calls():
    head, recs = _trace(NEMESIS)
    ops = orjson.loads(b"".join(export("porcupine", head, recs)))
    client = [r for r in recs if r["type"] == "client"]
    ok = sum(r["op"] == "ok" for r in client)
    info = sum(r["op"] == "info" for r in client)
    invoked = sum(r["op"] == "invoke" for r in client)
    failed = sum(r["op"] == "fail" for r in client)
    assert len(ops) == invoked - failed and len(ops) >= ok + info
    end_ns = round(max(r["t"] for r in recs) * 1e6)
    for op in ops:
        assert op["call"] < op["return"]
        assert set(op["input"]) == {"op", "key", "value"}
        if op["output"] == {"unknown": True}:
            assert op["return"] == end_ns + 1
    assert sum(op["output"] == {"unknown": True} for op in ops) >= info
    reads = [op for op in ops if op["input"]["op"] == "read" and "value" in op["output"]]
    assert reads


def test_unknown_format_is_named():
    with pytest.raises(ExportError, match="'edn' is not one of jepsen, porcupine, shiviz"):
        export("edn", {"nodes": []}, [])


def test_cli_export(tmp_path, capsys):
    trace = tmp_path / "t.ndjson"
    buf = io.BytesIO()
    run_scenario(parse_scenario({"nodes": 3, "seed": 2, "duration_ms": 800}), trace=buf)
    trace.write_bytes(buf.getvalue())
    out = tmp_path / "t.log"
    assert main(["export", str(trace), "--format", "shiviz", "-o", str(out)]) == 0
    assert out.read_text().startswith(SHIVIZ_REGEX + "\n\n")
    assert main(["export", str(trace), "--format", "edn"]) == 2
    assert "--format: 'edn' is not one of" in capsys.readouterr().err
    assert main(["export", str(tmp_path / "missing.ndjson"), "--format", "jepsen"]) == 2
    assert "cannot read trace" in capsys.readouterr().err
