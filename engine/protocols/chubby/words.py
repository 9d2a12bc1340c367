"""Chubby in words: message labels (the page's pills) and the transcript's lines for `state`,
`txn`, `session` and `write` records. The Multi-Paxos messages are told as Paxos tells them."""

from __future__ import annotations

from .. import Words
from ..paxos.ballot import label
from ..paxos.words import PAXOS_WORDS
from ..zk.words import session_words, write_words


def short(lock: str | None) -> str:
    return (lock or "").rsplit("/", 1)[-1]


def command(cmd: dict | None) -> str:
    """A database command in words: `epoch n3`, `acquire c1.1`, `expire c2.1`."""
    if cmd is None:
        return "no-op"
    return f"{cmd['op']} {cmd.get('session') or cmd.get('node')}"


def message(m: dict) -> str:
    k = m["kind"]
    if k in ("Accept", "Accepted"):
        return f"{k} {label(m['ballot'])} s{m['slot']}={command(m['value'])}"
    if k == "Nack" and "lease_ms" in m:
        return f"Nack: lease for {m['lease_ms']:g} ms more (refused {label(m['ballot'])})"
    if k == "LeaseAck":
        return f"LeaseAck @{m['sent_us'] / 1000:g}"
    if k == "OpenSession":
        return f"OpenSession {m['session']}"
    if k == "SessionOpened":
        return f"SessionOpened {m['session']} e{m['epoch']} until {m['lease_until_ms']:g}"
    if k == "KeepAlive":
        return f"KeepAlive {m['session']} e{m['epoch']}"
    if k == "KeepAliveReply":
        return f"KeepAliveReply {m['session']} e{m['epoch']} until {m['lease_until_ms']:g}"
    if k == "SessionExpired":
        return f"SessionExpired {m['session']}"
    if k == "Redirect":
        return f"Redirect to {m['master'] or '?'}"
    if k == "SessionClosed":
        return f"SessionClosed {m['session']}"
    if k in ("Acquire", "Release", "CloseSession"):
        return f"#{m['req']} {k} {short(m['lock'])} e{m['epoch']}"
    if k == "Reply":
        if not m["ok"]:
            return f"#{m['req']} error {m['error']} (e{m['epoch']})"
        gen = f" gen={m['generation']}" if "generation" in m else ""
        return f"#{m['req']} ok {m['op']} {short(m['lock'])}{gen}"
    if k == "Write":
        seq = m.get("sequencer")
        return f"Write {m['value']!r} sequencer={'none' if seq is None else f'{short(seq[0])}:{seq[1][:2]}:{seq[2]}'}"
    if k == "WriteReply":
        return f"WriteReply {'accepted' if m['accepted'] else 'rejected'}"
    return PAXOS_WORDS.message(m)


def state_words(rec: dict) -> str:
    n, role = rec["node"], rec["role"]
    if "commit" in rec:
        return f"{n:>4} {role} e{rec['epoch']} commit={rec['commit']}"
    if "connected_to" in rec:
        s = (f"{n:>4} {role} session={rec['session']} {rec['session_state']} "
             f"on={rec['connected_to']} e{rec['epoch']}")
        if rec["holds_lock"]:
            s += f" HOLDS gen={rec['token']}"
        return s
    return f"{n:>4} {role} token={rec.get('token')} value={rec.get('value')!r} rejected={rec.get('rejected')}"


def txn_words(rec: dict) -> str:
    op = rec["op"]
    s = f"{rec['node']:>4} apply slot {rec['slot']} {op}"
    if op == "epoch":
        return s + f" {rec['epoch']} ({rec['master']})"
    s += f" {rec['session']}"
    if "lock" in rec:
        s += f" {short(rec['lock'])}"
    if not rec["ok"]:
        return s + " (refused)"
    if "generation" in rec:
        s += f" gen={rec['generation']}"
    if rec.get("freed"):
        s += f" frees {', '.join(short(x) for x in rec['freed'])}"
        if op == "expire":
            s += f" (lock-delay until {rec['delay_until_ms']:g})"
    return s


CHUBBY_WORDS = Words(message=message, records={"state": state_words, "txn": txn_words,
                                               "session": session_words, "write": write_words})
