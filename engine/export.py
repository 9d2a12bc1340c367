"""A trace in other tools' formats: ShiViz's space-time log and the client history as Jepsen
(EDN) or Porcupine (JSON) read it. Pure functions of the trace's records (docs/trace-format.md);
`playground export` and `GET /api/trace?format=` call them. docs/exports.md documents each.

ShiViz (Beschastnikh et al., "Debugging distributed systems", CACM 2016) draws a space-time
diagram from a log in which every event carries its host's vector clock. The log here is ShiViz's
file format: line 1 the parsing regular expression, line 2 the (empty) execution delimiter, then
two lines per event: the event's text, and `host {vector clock}`. Clocks follow the usual rules
(Fidge/Mattern): a host ticks its own entry on each event; a send's clock travels with the
message; a delivery merges it (element-wise max) and ticks. A dropped message is a send with no
receive (ShiViz draws none); faults and role changes are local events on the node they name.

Jepsen's histories (Kingsbury; the format Knossos and Elle read) are EDN maps, one per line:
`{:type :invoke|:ok|:fail|:info, :f :read|:write|:cas, :value [key v], :process N, :time ns,
:index i}`, with a key-value run's per-key values as `jepsen.independent` tuples `[key v]` (a cas
as `[key [old new]]`). Porcupine (Athalye, 2017) checks a list of operations, each with its
client, input, call time, output and return time; an operation that timed out (`info`) may or may
not have happened, so it has no output and returns at the end of the history, Porcupine's own
advice for such calls.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

import orjson

SHIVIZ_REGEX = r"(?<event>.*)\n(?<host>\S*) (?<clock>{.*})"
FORMATS = {"shiviz": "ShiViz log (space-time diagram)",
           "jepsen": "Jepsen history (EDN, one operation map per line)",
           "porcupine": "Porcupine history (JSON list of operations)"}
CONTENT = {"shiviz": ("text/plain; charset=utf-8", "log"),
           "jepsen": ("application/edn; charset=utf-8", "edn"),
           "porcupine": ("application/json", "json")}


class ExportError(ValueError):
    pass


def _fault_text(rec: dict) -> str:
    who = "nemesis" if rec.get("by") == "nemesis" else "user"
    rest = {k: v for k, v in rec.items() if k not in ("type", "t", "by", "do", "node")}
    tail = (" " + orjson.dumps(rest).decode()) if rest else ""
    return f"{rec.get('do')} by {who}{tail}"


def _fault_hosts(rec: dict, hosts: list[str]) -> list[str]:
    """The nodes a fault record touches (a partition or a link change: each end it names)."""
    if rec.get("node") in hosts:
        return [rec["node"]]
    named = [rec.get("from"), rec.get("to")]
    out = [h for h in named if h in hosts]
    for g in rec.get("groups") or ():
        out += [h for h in g if h in hosts]
    return list(dict.fromkeys(out))


class Exporter:
    """Push-style: `feed(rec)` returns the text that record adds (possibly ""), `end()` the rest.
    The server streams a run's records through one without holding the trace."""

    def __init__(self, head: dict) -> None:
        self.head = head

    def start(self) -> str:
        return ""

    def feed(self, rec: dict) -> str:
        return ""

    def end(self) -> str:
        return ""


class Shiviz(Exporter):
    """The ShiViz file: each event two lines (text, then `host {clock}`)."""

    def __init__(self, head: dict) -> None:
        super().__init__(head)
        self.hosts: list[str] = [str(h) for h in head.get("nodes", ())]
        self.clocks: dict[str, dict[str, int]] = {}
        self.carried: dict[int, tuple[str, str, dict[str, int], str]] = {}  # id -> from, to, clock, kind
        self.roles: dict[str, object] = {}

    def start(self) -> str:
        return SHIVIZ_REGEX + "\n\n"

    def event(self, host: str, text: str, merge: dict[str, int] | None = None) -> str:
        c = self.clocks.setdefault(host, {})
        if merge:
            for h, n in merge.items():
                if n > c.get(h, 0):
                    c[h] = n
        c[host] = c.get(host, 0) + 1
        return f"{text}\n{host} {orjson.dumps(c).decode()}\n"

    def feed(self, rec: dict) -> str:
        kind = rec.get("type")
        stamp = f"t={rec.get('t', 0):g}ms"
        if kind == "send":
            src, dst, mid = str(rec["from"]), str(rec["to"]), rec["id"]
            what = str((rec.get("msg") or {}).get("kind", "message"))
            for h in (src, dst):
                if h not in self.hosts:
                    self.hosts.append(h)
            line = self.event(src, f"{stamp} send {what} #{mid} to {dst}")
            self.carried[mid] = (src, dst, dict(self.clocks[src]), what)
            return line
        if kind in ("deliver", "drop"):
            got = self.carried.pop(rec["id"], None)
            if got is None:
                return ""
            src, dst, clock, what = got
            if kind == "drop":
                return self.event(src, f"{stamp} (lost: {what} #{rec['id']}, {rec.get('why', 'dropped')})")
            return self.event(dst, f"{stamp} receive {what} #{rec['id']} from {src}", clock)
        if kind == "fault":
            return "".join(self.event(h, f"{stamp} {_fault_text(rec)}")
                           for h in _fault_hosts(rec, self.hosts))
        if kind == "state":
            node, role = rec.get("node"), rec.get("role")
            if node is not None and role is not None and self.roles.get(node) != role:
                self.roles[node] = role
                return self.event(str(node), f"{stamp} becomes {role}")
        return ""


# --- client histories ------------------------------------------------------------------------
def _edn(x) -> str:
    if x is None:
        return "nil"
    if isinstance(x, bool):
        return "true" if x else "false"
    if isinstance(x, int):
        return repr(x)
    if isinstance(x, float):
        return repr(x)
    if isinstance(x, _Kw):
        return ":" + x
    if isinstance(x, (list, tuple)):
        return "[" + " ".join(_edn(v) for v in x) + "]"
    return orjson.dumps(str(x)).decode()  # a string, with JSON's escapes (EDN reads them)


class _Kw(str):
    """An EDN keyword."""


def _ns(t) -> int:
    return int(round(float(t) * 1_000_000))


class _Processes:
    """Client names to Jepsen process numbers; `retire` gives a client a fresh number."""

    def __init__(self) -> None:
        self.ids: dict[str, int] = {}
        self.next = 0

    def of(self, client: str) -> int:
        if client not in self.ids:
            self.retire(client)
        return self.ids[client]

    def retire(self, client: str) -> None:
        self.ids[client], self.next = self.next, self.next + 1


class Jepsen(Exporter):
    """Jepsen EDN, one operation map per line. As in Jepsen, a process whose call ended in `info`
    (timed out: it may still take effect) never calls again: the client's next call is a new
    process number."""

    def __init__(self, head: dict) -> None:
        super().__init__(head)
        self.procs = _Processes()
        self.index = 0

    def feed(self, rec: dict) -> str:
        if rec.get("type") != "client":
            return ""
        fields = (("type", _Kw(rec["op"])), ("f", _Kw(rec["f"])),
                  ("value", [rec.get("key"), rec.get("value")]),
                  ("process", self.procs.of(rec["client"])), ("time", _ns(rec["t"])),
                  ("index", self.index))
        self.index += 1
        if rec["op"] == "info":
            self.procs.retire(rec["client"])
        return "{" + ", ".join(f":{k} {_edn(v)}" for k, v in fields) + "}\n"


class Porcupine(Exporter):
    """Porcupine's operations (a JSON list), in invocation order, times in ns: each call that
    completed or timed out once; a failed call (certainly did not happen) is left out."""

    def __init__(self, head: dict) -> None:
        super().__init__(head)
        self.procs = _Processes()
        self.open: dict[tuple[str, object], dict] = {}
        self.ops: list[dict] = []
        self.end_ns = 0

    def feed(self, rec: dict) -> str:
        self.end_ns = max(self.end_ns, _ns(rec.get("t", 0)))
        if rec.get("type") != "client":
            return ""
        key = (rec["client"], rec.get("req"))
        if rec["op"] == "invoke":
            op = {"client_id": self.procs.of(rec["client"]),
                  "input": {"op": rec["f"], "key": rec.get("key"), "value": rec.get("value")},
                  "call": _ns(rec["t"]), "output": None, "return": None}
            self.open[key] = op
            self.ops.append(op)
            return ""
        op = self.open.pop(key, None)
        if op is None:
            return ""
        if rec["op"] == "fail":
            op["failed"] = True
        elif rec["op"] == "ok":
            op["output"] = {"value": rec.get("value") if rec["f"] == "read" else None}
            op["return"] = _ns(rec["t"])
        else:  # info: may or may not have happened; returns at the end of the history
            self.procs.retire(rec["client"])
        return ""

    def end(self) -> str:
        ops = []
        for op in self.ops:
            if op.pop("failed", False):
                continue
            if op["return"] is None:
                op["return"], op["output"] = self.end_ns + 1, {"unknown": True}
            ops.append(op)
        return orjson.dumps(ops).decode() + "\n"


EXPORTERS: dict[str, type[Exporter]] = {"shiviz": Shiviz, "jepsen": Jepsen, "porcupine": Porcupine}


def exporter(fmt: str, head: dict) -> Exporter:
    if fmt not in EXPORTERS:
        raise ExportError(f"format: {fmt!r} is not one of {', '.join(sorted(EXPORTERS))}")
    return EXPORTERS[fmt](head)


def export(fmt: str, head: dict, records: Iterable[dict]) -> Iterator[bytes]:
    """The trace in format `fmt` (a key of FORMATS), as chunks of bytes."""
    x = exporter(fmt, head)

    def chunks() -> Iterator[bytes]:
        yield x.start().encode()
        for rec in records:
            out = x.feed(rec)
            if out:
                yield out.encode()
        yield x.end().encode()

    return chunks()


__all__ = ["CONTENT", "EXPORTERS", "FORMATS", "ExportError", "Exporter", "export", "exporter"]
