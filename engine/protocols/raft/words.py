"""Raft in a transcript's words (golden tests, `--transcript`): its messages and `state` records.
The key-value workload's words (client requests, replies and history) are the workload's."""

from __future__ import annotations

from ...workloads.kv import client_words, op_words, reply_words, request_words
from .. import Words


def _entry(e) -> str:
    return f"t{e[0]}:{'noop' if e[1] is None else op_words(e[1])}"


def message_words(m: dict) -> str:
    k = m["kind"]
    if k == "RequestVote":
        pre = " pre" if m.get("pre_vote") else ""
        return f"RequestVote{pre} t{m['term']} last={m['last_log_index']}/t{m['last_log_term']}"
    if k == "RequestVoteResponse":
        return f"Vote t{m['term']} {'granted' if m['granted'] else 'denied'}"
    if k == "AppendEntries":
        e = m["entries"]
        ents = (" +[" + ", ".join(_entry(x) for x in e) + "]") if e else ""
        return (f"AppendEntries t{m['term']} prev={m['prev_log_index']}/t{m['prev_log_term']} "
                f"commit={m['leader_commit']}{ents}")
    if k == "AppendEntriesResponse":
        if m["success"]:
            return f"AppendOK t{m['term']} match={m['match_index']}"
        return f"AppendReject t{m['term']} conflict={m.get('conflict_index')}/t{m.get('conflict_term')}"
    if k == "ClientRequest":
        return request_words(m)
    if k == "ClientReply":
        return reply_words(m)
    return k


def state_words(rec: dict) -> str:
    s = (f"{rec['node']:>4} {rec['role']:<9} term={rec['term']} voted_for={rec['voted_for']} "
         f"commit={rec['commit']}")
    lg = rec.get("log")
    if lg is not None:
        s += f" log: keep {lg['keep']}"
        if lg["append"]:
            s += " + " + ", ".join(_entry(e) for e in lg["append"])
    return s


RAFT_WORDS = Words(message=message_words, records={"state": state_words, "client": client_words})
