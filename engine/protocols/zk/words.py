"""ZooKeeper in words: message labels (the page's pills) and the transcript's lines for `state`,
`txn`, `session`, `watch`, `write`, `read` and `op` records. Zxids read as `e.c` (epoch, counter)."""

from __future__ import annotations

from .. import Words


def zl(z) -> str:
    return f"{z[0]}.{z[1]}"


def _req(r: dict) -> str:
    op = r["op"]
    if op == "create":
        flags = "".join(f for f, on in (("E", r.get("ephemeral")), ("S", r.get("sequential"))) if on)
        return f"create {r['path']}" + (f" [{flags}]" if flags else "")
    if op in ("get", "exists", "children"):
        return f"{op} {r['path']}" + (" +watch" if r.get("watch") else "")
    if op in ("set", "delete") and "version" in r:
        return f"{op} {r['path']} v{r['version']}"
    return f"{op} {r.get('path', '')}".rstrip()


def message(m: dict) -> str:
    k = m["kind"]
    if k == "Vote":
        return f"Vote {m['leader']} zxid={zl(m['zxid'])} e{m['epoch']} r{m['round']} ({m['state']})"
    if k == "CEPOCH":
        return f"CEPOCH acc=e{m['accepted_epoch']}"
    if k in ("NEWEPOCH", "NEWLEADER"):
        return f"{k} e{m['epoch']}"
    if k == "ACKEPOCH":
        return f"ACKEPOCH cur=e{m['current_epoch']} last={zl(m['last_zxid'])}"
    if k in ("DIFF", "SNAP"):
        e = m["entries"]
        return f"{k} {len(e)}" + (f" {zl(e[0][0])}..{zl(e[-1][0])}" if e else "")
    if k == "TRUNC":
        return f"TRUNC to {zl(m['zxid'])}"
    if k in ("ACKLD", "UPTODATE", "ACK", "COMMIT"):
        return f"{k} {zl(m['zxid'])}"
    if k == "PROPOSE":
        t = m["txn"]
        return f"PROPOSE {zl(m['zxid'])} {t['op']} {t.get('path') or t.get('session') or ''}".rstrip()
    if k == "PINGREPLY":
        return f"PINGREPLY {len(m['sessions'])} sessions"
    if k == "REQUEST":
        return f"REQUEST {m['client']}#{m['cxid']} {_req(m['req'])}"
    if k in ("ERROR",):
        return f"ERROR {m['client']}#{m['cxid']} {m['err']}"
    if k in ("SYNC", "SYNCED"):
        return f"{k} {m['client']}#{m['cxid']}"
    if k == "OWNER":
        return f"OWNER {m['session']}"
    if k == "Connect":
        return f"Connect {m['session'] or 'new session'} ({m['timeout_ms']:g} ms)"
    if k == "Connected":
        return f"Connected {m['session']} ({m['timeout_ms']:g} ms)"
    if k == "Expired" and m.get("closed"):
        return f"Expired {m['session']} (closed)"
    if k in ("Expired", "Ping", "Pong"):
        return f"{k} {m['session']}"
    if k == "Request":
        return f"#{m['cxid']} {_req(m['req'])}"
    if k == "Reply":
        if not m["ok"]:
            return f"#{m['cxid']} error {m['err']}"
        extra = ""
        if "children" in m:
            extra = " [" + ", ".join(c[-4:] for c in m["children"]) + "]"
        elif "exists" in m:
            extra = f" exists={m['exists']}"
        return f"#{m['cxid']} ok {m.get('op', '')} {m.get('path', '')}{extra} @{zl(m['zxid'])}".replace("  ", " ")
    if k == "SetWatches":
        return f"SetWatches {', '.join(f'{w[1]} {w[0]}' for w in m['watches'])} since @{zl(m['zxid'])}"
    if k == "Event":
        return f"Event {m['watch']} {m['path']} @{zl(m['zxid'])}"
    if k == "Write":
        return f"Write {m['value']!r} token={m['token']}"
    if k == "WriteReply":
        return f"WriteReply {'accepted' if m['accepted'] else 'rejected'}"
    return k


STATE_WORDS = {
    "role": "servers: looking, following, leading, down; clients: holder, waiter, idle (lock) or "
    "active, standby (election); the storage: storage.",
    "phase": "A server's Zab phase: election, discovery, synchronization, broadcast.",
    "epoch": "A server's current epoch (stable storage).",
    "last_zxid": "The last logged zxid [epoch, counter].",
    "committed_zxid": "The last committed zxid [epoch, counter] (volatile).",
    "connected_to": "The server a client is connected to, or null.",
    "holds_lock": "Whether the client believes it holds the lock (`token`: its node's sequence "
    "number; `lock_zxid`: the state it read that in).",
}


def state_words(rec: dict) -> str:
    n, role = rec["node"], rec["role"]
    if "phase" in rec:
        return (f"{n:>4} {role} {rec['phase']} e{rec['epoch']} last={zl(rec['last_zxid'])} "
                f"committed={zl(rec['committed_zxid'])}")
    if "connected_to" in rec:
        s = f"{n:>4} {role} on={rec['connected_to']} session={rec['session']} {rec['recipe']}"
        if rec["lock_node"]:
            s += f" node={rec['lock_node'].rsplit('/', 1)[1]}"
        if rec["holds_lock"]:
            s += f" HOLDS token={rec['token']} @{zl(rec['lock_zxid'])}"
        return s
    return f"{n:>4} {role} token={rec.get('token')} value={rec.get('value')!r} rejected={rec.get('rejected')}"


def txn_words(rec: dict) -> str:
    what = rec.get("path") or rec.get("session") or ""
    s = f"{rec['node']:>4} commit {zl(rec['zxid'])} {rec['op']} {what}"
    if rec.get("ephemeral_owner"):
        s += f" (ephemeral of {rec['ephemeral_owner']})"
    if rec.get("deleted"):
        s += f" deletes {', '.join(rec['deleted'])}"
    return s


def session_words(rec: dict) -> str:
    return f"{rec['client']:>4} session {rec['session']} {rec['event']} ({rec['server']})"


def watch_words(rec: dict) -> str:
    return f"{rec['node']:>4} watch {rec['event']} {rec['kind']} {rec['path']} for {rec['session']} @{zl(rec['zxid'])}"


def write_words(rec: dict) -> str:
    verdict = "ACCEPTED" if rec["accepted"] else "REJECTED"
    return f"{rec['node']:>4} {verdict} {rec['client']}'s write {rec['value']!r} token={rec['token']} (newest {rec['newest']})"


def read_words(rec: dict) -> str:
    kids = ", ".join(c.split("-lock-")[0] for c in rec["children"]) or "nothing"
    return f"{rec['client']:>4} read {rec['path']} on {rec['server']} @{zl(rec['zxid'])}: {kids}"


def op_words(rec: dict) -> str:
    """A user's call and its answer: `c1 set /data v0 -> ok version 1 @1.5 on n2`."""
    what = rec["op"] + (f" {rec['path']}" if rec.get("path") else "")
    if "asked_version" in rec:
        what += f" v{rec['asked_version']}"
    for flag in ("ephemeral", "sequential", "watch", "synced"):
        if rec.get(flag):
            what += f" +{flag}"
    if not rec["ok"]:
        got = f"error {rec['err']}"
    else:
        got = "ok"
        if "created" in rec:
            got += f" {rec['created']}"
        if "data" in rec:
            got += f" data={rec['data']!r}"
        if "version" in rec:
            got += f" version {rec['version']}"
        if "children" in rec:
            got += f" [{', '.join(rec['children'])}]"
        if "exists" in rec:
            got += f" exists={rec['exists']}"
    at = f" @{zl(rec['zxid'])}" if rec.get("zxid") else ""
    return f"{rec['client']:>4} {what} -> {got}{at} on {rec['server']}"


ZK_WORDS = Words(message=message, records={"state": state_words, "txn": txn_words,
                                           "session": session_words, "watch": watch_words,
                                           "write": write_words, "read": read_words,
                                           "op": op_words})
