"""The key-value workload in words, for every protocol that serves it (Raft, Multi-Paxos): a
command's short label and the sentences of the client history and the `request` action."""

from __future__ import annotations

from typing import Any


def _value(v: Any) -> str:
    if isinstance(v, (list, tuple)) and len(v) == 2:
        return f"{v[0]}\u2192{v[1]}"
    return "" if v is None else str(v)


def op_label(op: str, key: str, value: Any) -> str:
    if op == "write":
        return f"w {key}={_value(value)}"
    if op == "cas":
        return f"cas {key} {_value(value)}"
    return f"r {key}"


def client_sentence(rec: dict) -> str | None:
    """A `client` record in words (None for an invoke: the click's fault record already said it)."""
    op = rec["op"]
    what = op_label(rec.get("f"), rec.get("key"), rec.get("value"))
    c = rec["client"]
    if op == "invoke":
        return None
    if op == "ok":
        return f"client {c}: {what} \u2192 ok"
    if op == "fail":
        return f"client {c}: {what} \u2192 failed (did not take effect)"
    return f"client {c}: {what} \u2192 timed out (outcome unknown)"


def request_words(rec: dict) -> str:
    """The `request` action (a user's key-value operation) in words."""
    return f"sent {op_label(rec.get('op', 'write'), rec.get('key', 'k1'), rec.get('value'))} to {rec['node']}"


def client_msg_label(msg: dict) -> tuple[str, str] | None:
    """The (label, class) of a client protocol pill (ClientRequest, ClientReply), else None."""
    k = msg.get("kind")
    if k == "ClientRequest":
        return op_label(msg.get("op"), msg.get("key"), msg.get("value")), "client"
    if k == "ClientReply":
        if msg.get("ok"):
            return "ok", "client"
        return ("redirect" if msg.get("error") == "not_leader" else "fail"), "client"
    return None
