"""What the coordination-service adapters share (ZooKeeper's zk.py, Chubby's chubby.py): the fenced
storage service `st` (engine/protocols/zk/storage.py, used by both) as a summary, its pills and its
`write` records in words, and the client processes' recipe actions (acquire, release, write, close) in
words, and `CoordAdapter`, the adapter's shape they share (servers, clients and the storage told
apart by one field, each record to the sentence of its kind). The page's side of the same is
static/js/protocols/coord.js.
"""

from __future__ import annotations

from abc import ABC, abstractmethod

from .base import Adapter


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
    if rec.get("why"):  # Chubby's storage: a sequencer for another lock, or not exclusive
        return f"{rec['node']} REJECTED {rec['client']}'s write {rec['value']!r}: {rec['why']}"
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
    if do == "close":
        return f"asked {n} to close its session"
    return None


class CoordAdapter(Adapter, ABC):
    """What a coordination service's adapter does alike: a node is a server when its view and its
    `state` records carry `server_key`, a client process when they carry `client_key`, else the
    storage service; `describe` sends each record to the sentence of its kind, the storage's
    writes and the recipe actions told here. A subclass gives the hooks below."""

    server_key = client_key = "?"
    token_word, fence_word = "token", "fencing"  # what the storage compares, and why it refuses

    def node(self, v: dict, full: bool, log_window: int) -> dict:
        down = v["status"] == "down"
        if self.server_key in v:
            return self.server_node(v, down)
        if self.client_key in v:
            return self.client_node(v, down)
        return storage_summary(v)

    def told(self, v: dict) -> tuple:
        down = v["status"] == "down"
        if self.server_key in v:
            return self.server_told(v, down)
        if self.client_key in v:
            return self.client_told(v, down)
        return ("down" if down else "storage",)

    def describe(self, rec: dict, prev: dict) -> str | None:
        t = rec["type"]
        if t == "state":
            if self.server_key in rec:
                return self.server_sentence(rec, prev)
            if self.client_key in rec:
                return self.client_sentence(rec, prev)
            prev[rec["node"]] = (rec["role"],)
            return None
        if t == "session":
            return self.session_sentence(rec, prev)
        if t == "txn":
            return self.txn_sentence(rec, prev)
        if t == "write":
            return write_sentence(rec, self.token_word, self.fence_word)
        return self.other_sentence(rec, prev)

    def fault_words(self, rec: dict) -> str:
        return recipe_words(rec) or self.action_words(rec) or super().fault_words(rec)

    # --- the hooks -------------------------------------------------------------------------------
    @abstractmethod
    def server_node(self, v: dict, down: bool) -> dict:
        """The summary of a server view."""

    @abstractmethod
    def client_node(self, v: dict, down: bool) -> dict:
        """The summary of a client view."""

    @abstractmethod
    def server_told(self, v: dict, down: bool) -> tuple:
        """The told-state of a server view."""

    @abstractmethod
    def client_told(self, v: dict, down: bool) -> tuple:
        """The told-state of a client view."""

    def server_sentence(self, rec: dict, prev: dict) -> str | None:
        return None

    def client_sentence(self, rec: dict, prev: dict) -> str | None:
        return None

    def session_sentence(self, rec: dict, prev: dict) -> str | None:
        return None

    def txn_sentence(self, rec: dict, prev: dict) -> str | None:
        return None

    def other_sentence(self, rec: dict, prev: dict) -> str | None:
        """A record of the protocol's own kind (or a fault: the base adapter tells those)."""
        return super().describe(rec, prev)

    def action_words(self, rec: dict) -> str | None:
        """The protocol's own client actions in words (None: a generic fault)."""
        return None
