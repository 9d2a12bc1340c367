"""Traces: the public NDJSON format (docs/trace-format.md).

The first line is a header naming the format, the protocol, the nodes, the seed, the config, and the
whole scenario (actions included), so a trace can be replayed as well as checked. Every other line
is one record exactly as observers receive it.
"""

from __future__ import annotations

import math
from typing import IO, Callable, Iterable, Iterator

import orjson

from .protocols import Topology, get_protocol
from .scenario import Scenario, ScenarioError, parse_scenario

FORMAT = "playground-trace/1"


def header(scenario: Scenario) -> dict:
    d = scenario.to_dict()
    config = d["config"]
    extra = get_protocol(scenario.protocol).header_config
    if extra is not None:
        config = {**config, **extra(scenario)}
    return {"type": "header", "format": FORMAT, "protocol": scenario.protocol,
            "nodes": scenario.node_ids, "seed": scenario.seed, "config": config, "scenario": d}


class Tap:
    """Hands every record to `fn`, preceded by the records the world's writing observers wrote
    since (checkers with `writes`, such as the load balancer's metrics: see
    engine/checkers/base.py). Before each record the tap asks them to write what is due by its
    time (`catch_up`), so their records come before any later record, of whatever type: the
    trace stays in time order. Records written before the tap was made are not repeated."""

    __slots__ = ("fn", "sources", "seen")

    def __init__(self, sim, fn: Callable[[dict], None]):
        self.fn = fn
        self.sources = [c for c in sim.checkers if c.writes] if sim is not None else []
        self.seen = [c.written for c in self.sources]

    def __call__(self, rec: dict) -> None:
        if self.sources:
            t = rec["t"]
            for c in self.sources:
                c.catch_up(t)  # what is due by now, even before a record it reads makes it so
            self.flush()
        self.fn(rec)

    def flush(self) -> None:
        for i, c in enumerate(self.sources):
            if c.written > self.seen[i]:
                for r in c.written_since(self.seen[i]):
                    self.fn(r)
                self.seen[i] = c.written


class TraceWriter:
    """An observer that writes records as NDJSON lines; given the world (`sim`), also the records
    its writing observers write (`Tap`)."""

    def __init__(self, out: IO[bytes], scenario: Scenario, sim=None):
        self.out = out
        out.write(orjson.dumps(header(scenario)) + b"\n")
        self.tap = Tap(sim, self._write)

    def _write(self, rec: dict) -> None:
        self.out.write(orjson.dumps(rec, option=orjson.OPT_APPEND_NEWLINE))

    def __call__(self, rec: dict) -> None:
        self.tap(rec)

    def end(self, t_ms: float) -> None:
        """Close the trace with `{"type": "end", "t": ...}`: where the run was cut."""
        self.tap.flush()
        self.out.write(orjson.dumps({"type": "end", "t": t_ms}) + b"\n")


class TraceError(ValueError):
    """A trace could not be read; the message names the line and what was wrong."""


def read_trace(lines: Iterable[bytes | str]) -> tuple[dict, Iterator[dict]]:
    it = iter(lines)
    try:
        first = next(it)
    except StopIteration:
        raise TraceError("line 1: empty trace (expected a header)") from None
    try:
        head = orjson.loads(first)
    except orjson.JSONDecodeError as e:
        raise TraceError(f"line 1: not JSON ({e})") from None
    if not isinstance(head, dict) or head.get("type") != "header":
        raise TraceError("line 1: expected {\"type\": \"header\", ...}")
    if head.get("format") != FORMAT:
        raise TraceError(f"line 1: format {head.get('format')!r} is not {FORMAT!r}")
    for field in ("protocol", "nodes", "seed"):
        if field not in head:
            raise TraceError(f"line 1: header.{field} is missing")

    def records() -> Iterator[dict]:
        for n, line in enumerate(it, start=2):
            if line.strip():
                yield parse_record(line, n)

    return head, records()


def parse_record(line: bytes | str, n: int) -> dict:
    """One record line: JSON, an object with a `type` and a finite time `t` >= 0 (ms).
    Raises TraceError naming line `n`."""
    try:
        rec = orjson.loads(line)
    except orjson.JSONDecodeError as e:
        raise TraceError(f"line {n}: not JSON ({e})") from None
    if not isinstance(rec, dict) or "type" not in rec or "t" not in rec:
        raise TraceError(f"line {n}: a record needs 'type' and 't'")
    t = rec["t"]
    if not isinstance(t, (int, float)) or isinstance(t, bool):
        raise TraceError(f"line {n}: t must be a time in ms (a number), not {t!r}"[:200])
    if not math.isfinite(t) or t < 0:
        raise TraceError(f"line {n}: t must be a finite time in ms, at least 0 (not {t!r})")
    return rec


def scenario_from_header(head: dict) -> Scenario:
    if "scenario" not in head:
        raise TraceError("line 1: header.scenario is missing: this trace can be checked, not replayed")
    try:
        return parse_scenario(head["scenario"])
    except ScenarioError as e:
        raise TraceError(f"line 1: header.scenario: {e}") from None


def _topology_and_config(proto, head: dict) -> tuple[Topology, object]:
    """From the header's scenario when it has a valid one (older shapes are converted), else the
    header's `nodes` as servers and the protocol's default config."""
    if isinstance(head.get("scenario"), dict):
        try:
            sc = parse_scenario(head["scenario"])
            if sc.protocol == proto.name and sc.node_ids == list(head["nodes"]):
                return sc.layout, sc.config
        except ScenarioError:
            pass
    return Topology(tuple((n, "server") for n in head["nodes"])), proto.config_model()


def check_records(head: dict, records: Iterable[dict]) -> dict:
    """Re-run every checker of the trace's protocol over its records."""
    try:
        proto = get_protocol(head["protocol"])
    except ValueError as e:
        raise TraceError(f"line 1: header.protocol: {e}") from None
    nodes = head["nodes"]
    if not isinstance(nodes, list) or not all(isinstance(n, str) for n in nodes):
        raise TraceError("line 1: header.nodes: expected a list of node ids")
    topology, config = _topology_and_config(proto, head)
    servers = topology.ids
    checkers = proto.make_checkers(head["seed"], topology, config)
    routes: dict[str, list] = {}
    count = 0
    last_t = 0.0
    for rec in records:
        count += 1
        last_t = rec["t"]
        typ = rec["type"]
        if typ == "state" and rec.get("node") not in servers:
            raise TraceError(f"record {count}: state for unknown node {rec.get('node')!r}")
        fns = routes.get(typ)
        if fns is None:
            fns = routes[typ] = [c.observe for c in checkers
                                 if c.record_types is None or typ in c.record_types]
        try:
            for fn in fns:
                fn(rec)
        except (KeyError, TypeError, IndexError, AttributeError) as e:
            raise TraceError(f"record {count}: a {typ!r} record is malformed ({type(e).__name__}: {e})") from None
    return summarise(checkers, records=count, sim_ms=last_t)


def summarise(checkers: list, **extra) -> dict:
    lin = None
    for c in checkers:
        if c.name == "Linearizability":
            lin = c.check()
    violations = sorted((v for c in checkers for v in c.violations), key=lambda v: (v["t"], v["invariant"]))
    return {**extra, "violations": violations, "linearizable": lin}
