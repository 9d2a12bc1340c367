"""ZooKeeper's safety checkers, one invariant each, fed by records (they never change anything).

From the Zab paper and TLA+ spec: one established leader per epoch; PrefixConsistency/TotalOrder;
Integrity (committed only after a quorum logged it); LocalPrimaryOrder (a session's transactions
take effect in the order it issued them). From the ZooKeeper guarantees and recipes: an expired
session's ephemerals go in the expiry's own transaction; sequence numbers increase per parent;
watches fire once and only after a change; the storage never goes back to an older token; no two
clients hold the lock in the same committed state; no herd effect.

Several checkers replay the committed order: `TxnOrder` keeps it (the first server to commit a
zxid fixes what it is) and hands each new transaction to `on_new`.
"""

from __future__ import annotations

from bisect import bisect_right

from ...checkers.base import Checker
from ...quorum import majority
from .tree import GROUP, parent_of, seq_of


def _z(z) -> tuple:
    return (z[0], z[1])


def ident(rec: dict) -> tuple:
    """What a committed transaction is, for comparing two servers' commits at one zxid."""
    return (rec["op"], rec.get("path"), rec.get("session"), rec.get("cxid"))


class TxnOrder(Checker):
    """Replays the committed order: each transaction is handed to `on_new` the first time any
    server commits it. `key(rec)` is its place in the order (a zxid here; Chubby's log slot)."""

    record_types = ("txn",)

    def __init__(self, seed, servers):
        super().__init__(seed, servers)
        self.order: dict[tuple, dict] = {}

    @staticmethod
    def key(rec: dict):
        return _z(rec["zxid"])

    def observe(self, rec):
        if rec["type"] != "txn":
            return self.other(rec)
        z = self.key(rec)
        if z not in self.order:
            self.order[z] = rec
            self.on_new(z, rec)

    def on_new(self, z, rec) -> None:
        """A zxid committed for the first time anywhere."""

    def other(self, rec) -> None:
        """A record of another type this checker reads."""


class OneLeaderPerEpoch(Checker):
    name = "One established leader per epoch"
    explains = "At most one server completes synchronisation as the leader of a given epoch."
    leaders = "leaders"  # what the report calls them

    def __init__(self, seed, servers):
        super().__init__(seed, servers)
        self.leader: dict[int, str] = {}

    @staticmethod
    def established(rec: dict) -> bool:
        """The state record says its server leads (and serves) in its epoch."""
        return rec.get("role") == "leading" and rec.get("phase") == "broadcast"

    def observe(self, rec):
        if not self.established(rec):
            return
        e, n = rec["epoch"], rec["node"]
        other = self.leader.setdefault(e, n)
        if other != n:
            self.report(rec["t"], [n, other], f"{other} and {n} both established as {self.leaders} "
                        f"of epoch {e}")


class PrefixConsistency(Checker):
    name = "PrefixConsistency"
    explains = ("Every server's committed transactions are a prefix of one total order "
                "(TotalOrder, Agreement): the same transaction at each zxid, none skipped.")
    record_types = ("txn", "state")

    def __init__(self, seed, servers):
        super().__init__(seed, servers)
        self.order: list[tuple] = []  # [(zxid, ident)]
        self.pos: dict[str, int] = {}

    # Where a transaction is in the order, what it is, and how the report names its place
    # (a zxid here; Chubby's log slot).
    key = staticmethod(TxnOrder.key)
    ident = staticmethod(ident)

    @staticmethod
    def label(z) -> str:
        return str(list(z))

    def observe(self, rec):
        n = rec["node"]
        if rec["type"] == "state":
            if rec["role"] == "down" and n in self.pos:
                self.pos[n] = 0  # committed state is volatile: learned again from the start
            return
        z, what = self.key(rec), self.ident(rec)
        i = self.pos.get(n, 0)
        lab = self.label
        if i == len(self.order):
            if self.order and z <= self.order[-1][0]:
                self.report(rec["t"], [n], f"{n} committed {lab(z)} after {lab(self.order[-1][0])}")
                return
            self.order.append((z, what))
        elif self.order[i] != (z, what):
            want = self.order[i]
            self.report(rec["t"], [n], f"{n}'s commit #{i + 1} is {lab(z)} {what[0]} {what[1] or ''}; "
                        f"the order has {lab(want[0])} {want[1][0]} {want[1][1] or ''}")
            return
        self.pos[n] = i + 1


class Integrity(Checker):
    name = "Integrity"
    explains = "A transaction is committed only once a quorum of servers has logged it."
    record_types = ("txn", "state")

    def __init__(self, seed, servers):
        super().__init__(seed, servers)
        self.ensemble = [s for s in servers if s.startswith("n")]
        self.quorum = majority(len(self.ensemble))
        self.last: dict[str, tuple] = {}
        self.seen: set[tuple] = set()

    def observe(self, rec):
        n = rec["node"]
        if rec["type"] == "state":
            if "last_zxid" in rec and n in self.ensemble:
                self.last[n] = _z(rec["last_zxid"])
            return
        z = _z(rec["zxid"])
        if z in self.seen:
            return
        self.seen.add(z)
        logged = sorted(s for s, last in self.last.items() if last >= z)
        if len(logged) < self.quorum:
            self.report(rec["t"], [n], f"{n} committed {list(z)} when only {logged or 'no server'} "
                        f"had logged it (a quorum is {self.quorum})")


class LocalPrimaryOrder(TxnOrder):
    name = "LocalPrimaryOrder"
    explains = "Each session's transactions take effect in the order its client issued them."

    def __init__(self, seed, servers):
        super().__init__(seed, servers)
        self.last: dict[str, int] = {}

    def on_new(self, z, rec):
        s, c = rec.get("session"), rec.get("cxid")
        if s is None or not c or rec["op"] not in ("create", "delete", "set"):
            return
        prev = self.last.get(s, 0)
        if c <= prev:
            self.report(rec["t"], [rec["node"]], f"session {s}: request #{c} took effect after #{prev}")
        self.last[s] = max(prev, c)


class EphemeralsGoWithExpiry(TxnOrder):
    name = "Ephemerals end with their session"
    explains = ("An expired session's ephemeral nodes are deleted in the same transaction as its "
                "expiry, and no ephemeral is created for a session that is not open.")

    def __init__(self, seed, servers):
        super().__init__(seed, servers)
        self.open: set[str] = set()
        self.ended: set[str] = set()
        self.owned: dict[str, set[str]] = {}

    def on_new(self, z, rec):
        op = rec["op"]
        if op == "session_open":
            self.open.add(rec["session"])
        elif op == "create" and rec.get("ephemeral_owner"):
            s = rec["ephemeral_owner"]
            if s not in self.open:
                self.report(rec["t"], [rec["node"]], f"{rec['path']} created for session {s}, "
                            f"which is {'expired' if s in self.ended else 'not open'}")
            self.owned.setdefault(s, set()).add(rec["path"])
        elif op == "delete":
            for paths in self.owned.values():
                paths.discard(rec["path"])
        elif op in ("session_expire", "session_close"):
            s = rec["session"]
            have, gone = self.owned.pop(s, set()), set(rec.get("deleted", ()))
            if have != gone:
                self.report(rec["t"], [rec["node"]], f"session {s} ended at {rec['zxid']} deleting "
                            f"{sorted(gone)}, but it owned {sorted(have)}")
            self.open.discard(s)
            self.ended.add(s)
            for paths in self.owned.values():
                paths -= gone


class SequenceIncreases(TxnOrder):
    name = "Sequence numbers increase"
    explains = "The sequence numbers of a parent's sequential children strictly increase."

    def __init__(self, seed, servers):
        super().__init__(seed, servers)
        self.last: dict[str, int] = {}

    def on_new(self, z, rec):
        if rec["op"] != "create" or rec.get("seq") is None:
            return
        par, seq = parent_of(rec["path"]), rec["seq"]
        prev = self.last.get(par, -1)
        if seq <= prev or seq_of(rec["path"]) != seq:
            self.report(rec["t"], [rec["node"]], f"{rec['path']}: sequence {seq} after {prev} under {par}")
        self.last[par] = max(prev, seq)


class WatchOnce(TxnOrder):
    name = "Watches fire once, after a change"
    explains = ("Each watch fires at most once, and only for a transaction after it was set that "
                "changed its path (one-time triggers).")
    record_types = ("txn", "watch")

    def __init__(self, seed, servers):
        super().__init__(seed, servers)
        self.armed: dict[tuple, tuple] = {}

    def other(self, rec):
        key = (rec["node"], rec["session"], rec["path"], rec["kind"])
        z = _z(rec["zxid"])
        if rec["event"] == "set":
            self.armed[key] = z
            return
        since = self.armed.pop(key, None)
        if since is None:
            self.report(rec["t"], [rec["node"]], f"watch {rec['kind']} on {rec['path']} of "
                        f"{rec['session']} fired without being set (or twice)")
            return
        if rec.get("reconnect"):  # fired by SetWatches: some change since it was set will do
            touched = any(since < k <= z and self.touches(t, rec) for k, t in self.order.items())
        else:
            txn = self.order.get(z)
            touched = txn is not None and self.touches(txn, rec)
        if z <= since or not touched:
            self.report(rec["t"], [rec["node"]], f"watch {rec['kind']} on {rec['path']} set at "
                        f"{list(since)} fired at {list(z)}, which did not change it")


    @staticmethod
    def touches(txn: dict, rec: dict) -> bool:
        """Whether the transaction changed what the watch `rec` watches."""
        path, deleted = rec["path"], txn.get("deleted", ())
        if rec["kind"] == "data":
            return txn.get("path") == path or path in deleted
        return (parent_of(txn.get("path") or "/") == path or any(parent_of(p) == path for p in deleted)
                or (txn["op"] == "delete" and txn.get("path") == path) or path in deleted)


class FencingTokens(Checker):
    name = "Fencing tokens never go back"
    explains = "The storage service never accepts a write whose token is older than one it accepted."
    record_types = ("write",)

    def __init__(self, seed, servers):
        super().__init__(seed, servers)
        self.newest: int | None = None

    def observe(self, rec):
        if not rec["accepted"]:
            return
        tok = rec["token"]
        if self.newest is not None and (tok is None or tok < self.newest):
            self.report(rec["t"], [rec["client"]], f"storage accepted {rec['client']}'s write "
                        f"{rec['value']!r} with token {tok} after token {self.newest}")
            return
        self.newest = tok if self.newest is None else max(tok, self.newest)


class OneLockHolder(TxnOrder):
    name = "One lock holder per state"
    explains = ("No two clients hold the lock in the same committed state of the tree: a client "
                "holds it only when its node is the lowest child in the state it read.")
    record_types = ("txn", "state")

    def __init__(self, seed, servers):
        super().__init__(seed, servers)
        self.children: dict[str, set[str]] = {}
        self.zxids: dict[str, list[tuple]] = {}  # parent -> zxids changing its children
        self.lows: dict[str, list] = {}  # parent -> the lowest child after each of those

    def _changed(self, z, par):
        kids = self.children.get(par, set())
        low = min(kids, key=lambda p: (seq_of(p), p)) if kids else None
        self.zxids.setdefault(par, []).append(z)
        self.lows.setdefault(par, []).append(low)

    def on_new(self, z, rec):
        op = rec["op"]
        if op == "create" and rec.get("seq") is not None:
            par = parent_of(rec["path"])
            self.children.setdefault(par, set()).add(rec["path"])
            self._changed(z, par)
        for p in ([rec["path"]] if op == "delete" else rec.get("deleted", ())):
            par = parent_of(p)
            if p in self.children.get(par, ()):
                self.children[par].discard(p)
                self._changed(z, par)

    def other(self, rec):
        if rec["type"] != "state" or not rec.get("holds_lock"):
            return
        node, z = rec["lock_node"], _z(rec["lock_zxid"])
        par = parent_of(node)
        i = bisect_right(self.zxids.get(par, []), z) - 1
        low = self.lows[par][i] if i >= 0 else None
        if low != node:
            self.report(rec["t"], [rec["node"]], f"{rec['node']} holds the lock with {node} in the "
                        f"state {list(z)}, where the lowest node is {low}")


class NoHerd(TxnOrder):
    name = "No herd effect"
    explains = ("A change to the lock queue wakes at most one waiter per node deleted "
                "(predecessor watches, not a watch on the parent).")
    record_types = ("txn", "watch")

    def __init__(self, seed, servers):
        super().__init__(seed, servers)
        self.deleted: dict[tuple, int] = {}
        self.woken: dict[tuple, set[str]] = {}  # zxid -> sessions notified (on any server)
        # Each session's sequential nodes per parent, as [created zxid, deleted zxid or None],
        # and the zxid each data watch was set at (by server, session, path): to tell a waiter's
        # watch from one left from an earlier turn in the queue.
        self.nodes: dict[tuple[str, str], list[list]] = {}  # (parent, owner) -> nodes
        self.paths: dict[str, list] = {}  # path -> its entry in `nodes`
        self.set_at: dict[tuple[str, str, str], tuple] = {}

    def on_new(self, z, rec):
        self.deleted[z] = len(rec.get("deleted", ())) + (rec["op"] == "delete")
        if rec["op"] == "create" and rec.get("seq") is not None and rec.get("ephemeral_owner"):
            entry = [z, None]
            self.nodes.setdefault((parent_of(rec["path"]), rec["ephemeral_owner"]), []).append(entry)
            self.paths[rec["path"]] = entry
        for p in ([rec["path"]] if rec["op"] == "delete" else rec.get("deleted", ())):
            entry = self.paths.pop(p, None)
            if entry is not None:
                entry[1] = z

    def waiting_on(self, rec: dict, z: tuple) -> bool:
        """Whether a data watch that fired at `z` was a waiter's: set (ZooKeeper keeps a watch
        until it fires) while the session's node in the queue, as it stands after `z`, already
        existed. A watch the session set in an earlier turn of the queue (it released while
        waiting, and queued again) is not a waiter's; neither is one of a session with no node
        in the queue. A watch whose setting was not seen is counted."""
        session, path = rec["session"], rec["path"]
        mine = [c for c, d in self.nodes.get((parent_of(path), session), ())
                if c <= z and (d is None or d > z)]
        if not mine:
            return False
        set_z = self.set_at.get((rec["node"], session, path))
        return set_z is None or set_z >= mine[-1]

    def other(self, rec):
        if rec["event"] == "set":
            if rec["kind"] == "data":
                self.set_at[(rec["node"], rec["session"], rec["path"])] = _z(rec["zxid"])
            return
        z = tuple(rec["zxid"])
        if rec["event"] != "fire" or rec["path"].startswith(GROUP) or rec.get("user"):
            return  # (a group's members all watch its children: that is the membership recipe;
            # a watch the user's own call set is not the recipe's)
        if rec["kind"] == "data" and not self.waiting_on(rec, z):
            return
        woken = self.woken.setdefault(z, set())
        woken.add(rec["session"])
        if len(woken) == max(1, self.deleted.get(z, 0)) + 1:
            self.report(rec["t"], [rec["node"]], f"{len(woken)} waiters woken by {list(z)} "
                        f"({rec['kind']} watch on {rec['path']}): the herd effect")


CHECKERS = (OneLeaderPerEpoch, PrefixConsistency, Integrity, LocalPrimaryOrder,
            EphemeralsGoWithExpiry, SequenceIncreases, WatchOnce, FencingTokens, OneLockHolder,
            NoHerd)
ZK_INVARIANTS = tuple((c.name, c.explains) for c in CHECKERS)


def make_checkers(seed, topology, config):
    return [c(seed, topology.ids) for c in CHECKERS]
