"""What the coordination-service adapters share (ZooKeeper's zk.py, Chubby's chubby.py): the fenced
storage service `st` (engine/protocols/zk/storage.py, used by both) as a summary, its pills and its
`write` records in words, and the client processes' recipe actions (acquire, release, write) in
words. The page's side of the same is static/js/protocols/coord.js.
"""

from __future__ import annotations


def storage_summary(v: dict) -> dict:
    """The storage service's summary: newest token, value, counts and its recent writes
    (`[client, token, accepted, value, newest token after it]`, newest last)."""
    down = v["status"] == "down"
    return {"kind": "storage", "role": "down" if down else "storage", "token": v["token"],
            "value": v["value"], "accepted": v["accepted"], "rejected": v["rejected"],
            "recent": v.get("recent", [])}


def storage_label(msg: dict, token: str = "t") -> tuple[str, str] | None:
    """A Write or WriteReply pill (classes store, store-ok, store-bad); None for another kind."""
    k = msg.get("kind")
    if k == "Write":
        return f"write {token}={msg.get('token')}", "store"
    if k == "WriteReply":
        return ("\u2713 accepted", "store-ok") if msg.get("accepted") else ("\u2717 REJECTED", "store-bad")
    return None


def write_sentence(rec: dict, token: str = "token", why: str = "fencing") -> str:
    """A storage `write` record in words: accepted (and, without fencing, stale), or rejected."""
    if rec["accepted"]:
        stale = rec["newest"] is not None and rec["token"] is not None and rec["token"] < rec["newest"]
        return (f"{rec['node']} accepted {rec['client']}'s write {rec['value']!r} with {token} "
                f"{rec['token']}" + (f" although it has seen {token} {rec['newest']}: no fencing, "
                                     "the storage is corrupted" if stale else ""))
    return (f"{rec['node']} REJECTED {rec['client']}'s write {rec['value']!r}: {token} "
            f"{rec['token']} is older than {rec['newest']} ({why})")


def recipe_words(rec: dict) -> str | None:
    """The recipe actions every coordination client takes, in words (None for another action)."""
    do, n = rec.get("do"), rec.get("node")
    if do == "acquire":
        return f"asked {n} to take the lock"
    if do == "release":
        return f"asked {n} to release the lock"
    if do == "write":
        v = rec.get("value")
        return f"asked {n} to write {v!r} to the storage" if v else f"asked {n} to write to the storage"
    return None
