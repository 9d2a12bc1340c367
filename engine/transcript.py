"""Readable one-line-per-record transcripts of a run (golden tests, debugging, `--transcript`).

The kernel's records (send, drop, fault) are told here; a message's words and every other record
type (`state`, the workload's history) are the protocol's (`ProtocolSpec.words`). Deliveries and
the closing `end` are left out.
"""

from __future__ import annotations

from .protocols import ProtocolSpec, Words, get_protocol

SILENT = ("deliver", "end")  # kernel records a transcript leaves out


def words_of(protocol: str | ProtocolSpec | Words) -> Words:
    if isinstance(protocol, Words):
        return protocol
    spec = protocol if isinstance(protocol, ProtocolSpec) else get_protocol(protocol)
    if spec.words is None:
        raise ValueError(f"protocol {spec.name} has no transcript words")
    return spec.words


def line(rec: dict, protocol: str | ProtocolSpec | Words) -> str | None:
    words = words_of(protocol)
    t = f"{rec['t']:10.3f}"
    typ = rec["type"]
    if typ == "send":
        return f"{t} {rec['from']:>4} -> {rec['to']:<4} #{rec['id']} {words.message(rec['msg'])}"
    if typ == "drop":
        return f"{t}      xx #{rec['id']} dropped ({rec['why']})"
    if typ == "fault":
        rest = {k: v for k, v in rec.items() if k not in ("type", "t", "do", "by")}
        return f"{t}  {rec['by']:>6}! {rec['do']} {rest}"
    tell = words.records.get(typ)
    if tell is None:
        return None
    s = tell(rec)
    return None if s is None else f"{t} {s}"


def transcript(records, protocol: str | ProtocolSpec | Words, messages: bool = True) -> str:
    words = words_of(protocol)
    out = []
    for r in records:
        if not messages and r["type"] in ("send", "drop", "deliver"):
            continue
        s = line(r, words)
        if s is not None:
            out.append(s)
    return "\n".join(out) + "\n"
