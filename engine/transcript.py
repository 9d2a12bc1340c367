"""Readable one-line-per-record transcripts of a run (golden tests, debugging, `--transcript`)."""

from __future__ import annotations


def _cmd(cmd) -> str:
    if cmd is None:
        return "noop"
    v = cmd["value"]
    v = "" if v is None else f"={v[0]}->{v[1]}" if isinstance(v, list) else f"={v}"
    return f"{cmd['op']} {cmd['key']}{v}"


def _msg(m: dict) -> str:
    k = m["kind"]
    if k == "RequestVote":
        pre = " pre" if m.get("pre_vote") else ""
        return f"RequestVote{pre} t{m['term']} last={m['last_log_index']}/t{m['last_log_term']}"
    if k == "RequestVoteResponse":
        return f"Vote t{m['term']} {'granted' if m['granted'] else 'denied'}"
    if k == "AppendEntries":
        e = m["entries"]
        ents = (" +[" + ", ".join(f"t{x[0]}:{_cmd(x[1])}" for x in e) + "]") if e else ""
        return f"AppendEntries t{m['term']} prev={m['prev_log_index']}/t{m['prev_log_term']} commit={m['leader_commit']}{ents}"
    if k == "AppendEntriesResponse":
        if m["success"]:
            return f"AppendOK t{m['term']} match={m['match_index']}"
        return f"AppendReject t{m['term']} conflict={m.get('conflict_index')}/t{m.get('conflict_term')}"
    if k == "ClientRequest":
        return f"ClientRequest #{m['req']} {_cmd(m)}"
    if k == "ClientReply":
        if m.get("error"):
            return f"ClientReply #{m['req']} {m['error']} leader={m.get('leader')}"
        return f"ClientReply #{m['req']} {'ok' if m['ok'] else 'fail'} value={m.get('value')}"
    return k


def line(rec: dict) -> str | None:
    t = f"{rec['t']:10.3f}"
    typ = rec["type"]
    if typ == "state":
        s = (f"{t} {rec['node']:>4} {rec['role']:<9} term={rec['term']} voted_for={rec['voted_for']} "
             f"commit={rec['commit']}")
        lg = rec.get("log")
        if lg is not None:
            s += f" log: keep {lg['keep']}"
            if lg["append"]:
                s += " + " + ", ".join(f"t{e[0]}:{_cmd(e[1])}" for e in lg["append"])
        return s
    if typ == "send":
        return f"{t} {rec['from']:>4} -> {rec['to']:<4} #{rec['id']} {_msg(rec['msg'])}"
    if typ == "drop":
        return f"{t}      xx #{rec['id']} dropped ({rec['why']})"
    if typ == "fault":
        rest = {k: v for k, v in rec.items() if k not in ("type", "t", "do", "by")}
        return f"{t}  {rec['by']:>6}! {rec['do']} {rest}"
    if typ == "client":
        return f"{t} {rec['client']:>4} {rec['op']} {rec['f']} {rec['key']} {rec['value']}"
    return None


def transcript(records, messages: bool = True) -> str:
    out = []
    for r in records:
        if not messages and r["type"] in ("send", "drop", "deliver"):
            continue
        s = line(r)
        if s is not None:
            out.append(s)
    return "\n".join(out) + "\n"
