"""Paxos in words: message labels (the page's pills), the transcript's words (`PAXOS_WORDS`), and
a sentence for every message kind and state field (so every record a Paxos run emits is described).

Labels name ballots as `round.node` (`Prepare 3.n2`, `Promise 3.n2 (acc 2.n1=x)`, `Nack 4.n3`).
The client protocol's messages and the `client` history read as the key-value workload tells
them (engine/workloads/kv.py).
"""

from __future__ import annotations

from ...workloads.kv import client_words, reply_words, request_words
from .. import Words
from .ballot import label
from .checkers import show

MESSAGE_WORDS = {
    "Prepare": "1a: a proposer asks the acceptors to promise ballot `ballot` for every slot from "
    "`slot` on.",
    "Promise": "1b: an acceptor promises `ballot` and reports what it accepted (`accepted`: "
    "{slot: [ballot, value]}).",
    "Accept": "2a: a proposer asks the acceptors to accept `value` in `slot` at `ballot`.",
    "Accepted": "2b: an acceptor accepted `value` in `slot` at `ballot`, told to the learners.",
    "Nack": "An acceptor refused `ballot`: it promised the higher `promised`.",
    "Heartbeat": "Multi-Paxos: the leader of `ballot` is alive and has chosen slots below "
    "`commit`; `chosen` ({slot: value}) answers a CatchUp.",
    "CatchUp": "Multi-Paxos: a lagging learner asks the leader for the chosen values from `slot` on.",
    "ClientRequest": "A client's read, write or cas (as for Raft).",
    "ClientReply": "The service's answer; `not_leader` with a `leader` hint redirects (as for Raft).",
}

STATE_WORDS = {
    "role": "proposer, acceptor, learner (a list when a node plays several); leader for a "
    "Multi-Paxos proposer that leads; down when crashed.",
    "ballot": "The proposer's current ballot [round, node], or null.",
    "phase": "The proposer's phase: idle, preparing (phase 1), accepting (phase 2), leading.",
    "promised": "The acceptor's promise [round, node], or null (on stable storage).",
    "accepted": "Only the slots whose accepted proposal changed: {slot: [ballot, value]} (on "
    "stable storage).",
    "learned": "Only the slots newly learned: {slot: value} (volatile: forgotten at a crash).",
}


CLIENT_WORDS = {"ClientRequest": request_words, "ClientReply": reply_words}  # the workload's


def _slot_value(m: dict) -> str:
    return f"s{m['slot']}={show(m['value'])}"


def message(m: dict) -> str:
    """The label of a Paxos message."""
    k = m["kind"]
    if k == "Prepare":
        return f"Prepare {label(m['ballot'])}" + (f" from s{m['slot']}" if m["slot"] else "")
    if k == "Promise":
        acc = m["accepted"]
        if not acc:
            return f"Promise {label(m['ballot'])}"
        if len(acc) == 1:
            (s, (b, v)), = acc.items()
            where = "" if s == "0" else f"s{s} "
            return f"Promise {label(m['ballot'])} (acc {where}{label(b)}={show(v)})"
        return f"Promise {label(m['ballot'])} (acc {len(acc)} slots)"
    if k in ("Accept", "Accepted"):
        return f"{k} {label(m['ballot'])} {_slot_value(m)}"
    if k == "Nack":
        return f"Nack {label(m['promised'])} (refused {label(m['ballot'])})"
    if k == "Heartbeat":
        s = f"Heartbeat {label(m['ballot'])} commit={m['commit']}"
        chosen = m.get("chosen")
        if chosen:
            slots = sorted(int(x) for x in chosen)
            s += f" +chosen s{slots[0]}..s{slots[-1]}"
        return s
    if k == "CatchUp":
        return f"CatchUp {label(m['ballot'])} from s{m['slot']}"
    client = CLIENT_WORDS.get(k)
    return k if client is None else client(m)


def state_words(rec: dict) -> str:
    role = rec["role"]
    s = f"{rec['node']:>4} {','.join(role) if isinstance(role, list) else role}"
    if "ballot" in rec:
        s += f" ballot={label(rec['ballot'])} phase={rec['phase']}"
    if "promised" in rec:
        s += f" promised={label(rec['promised'])}"
    if rec.get("accepted"):
        s += " accepted: " + ", ".join(f"s{k}={label(b)}:{show(v)}" for k, (b, v) in rec["accepted"].items())
    if rec.get("learned"):
        s += " learned: " + ", ".join(f"s{k}={show(v)}" for k, v in rec["learned"].items())
    return s


PAXOS_WORDS = Words(message=message, records={"state": state_words, "client": client_words})
