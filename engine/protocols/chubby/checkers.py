"""Chubby's safety checkers, one invariant each, fed by records (they never change anything).
Where the invariant is ZooKeeper's, the checker is ZooKeeper's (engine/protocols/zk/checkers.py),
reading Chubby's records: the committed order is by log slot instead of zxid.

- One master per epoch (§2.12: each master picks a new epoch).
- Prefix consistency of the replicated database (Multi-Paxos's agreement: every replica applies
  the same command in each slot, §2.1 "copy updates from the master, sent using the consensus
  protocol").
- Fencing: the storage never accepts a sequencer older than one it accepted (§2.4).
- One lock holder: in the committed database, a lock is taken only while nobody holds it.
- Lock-delay (§2.4): a lock whose holder's session was lost without releasing it is not taken
  again within `lock_delay_ms` of the loss (the configured delay: `no_lock_delay` changes what the
  master does, not this).
"""

from __future__ import annotations

from ..zk.checkers import FencingTokens, OneLeaderPerEpoch, PrefixConsistency, TxnOrder


def slot_of(rec: dict) -> int:
    return rec["slot"]


def what(rec: dict) -> tuple:
    """A committed command's identity, for comparing two replicas' commits in one slot."""
    return (rec["op"], rec.get("lock") or rec.get("session") or rec.get("master"),
            rec.get("session"), rec.get("ok"), rec.get("generation"))


class OneMasterPerEpoch(OneLeaderPerEpoch):
    name = "One master per epoch"
    explains = "At most one replica serves as the master of a given epoch."
    leaders = "masters"

    @staticmethod
    def established(rec: dict) -> bool:
        return rec.get("role") == "master"


class DatabasePrefix(PrefixConsistency):
    name = "Database prefix consistency"
    explains = ("Every replica's applied database commands are a prefix of one order (Paxos "
                "agreement): the same command in each slot, none skipped.")
    key = staticmethod(slot_of)
    ident = staticmethod(what)

    @staticmethod
    def label(slot) -> str:
        return f"slot {slot}"


class _LockHistory(TxnOrder):
    """Replays the committed database (first commit of each slot, by slot) and keeps who holds
    each lock."""

    key = staticmethod(slot_of)

    def __init__(self, seed, servers):
        super().__init__(seed, servers)
        self.holder: dict[str, str] = {}  # lock -> session

    def on_new(self, slot, rec):
        op = rec["op"]
        if op == "acquire" and rec["ok"]:
            self.on_acquire(rec)
            self.holder[rec["lock"]] = rec["session"]
        elif op == "release" and rec["ok"]:
            self.holder.pop(rec["lock"], None)
        elif op in ("expire", "close") and rec["ok"]:
            for lock in rec.get("freed", ()):
                if op == "expire":
                    self.on_lost(lock, rec)
                self.holder.pop(lock, None)

    def on_acquire(self, rec) -> None:
        """A lock is taken (before `holder` says so)."""

    def on_lost(self, lock: str, rec) -> None:
        """A holder's session expired holding `lock`."""


class OneLockHolder(_LockHistory):
    """The clients' side of the lock (§2.4, §2.2): a client that believes it holds the lock with
    generation g was granted g by a committed acquire, and no two clients believe they hold the
    lock with the same generation. (The database grants a held lock to nobody by construction;
    what can go wrong is a client believing what the log never said.)"""

    name = "One lock holder"
    explains = ("A client holds the lock only with a generation the committed database granted "
                "to it, and no two clients hold the lock under one generation.")
    record_types = ("txn", "state")

    def __init__(self, seed, servers):
        super().__init__(seed, servers)
        self.granted: dict[int, str] = {}  # generation -> the client it was granted to
        self.believed: dict[str, int] = {}  # client -> the generation it believes it holds

    def on_acquire(self, rec):
        if rec.get("generation") is not None:
            self.granted.setdefault(rec["generation"], rec.get("client"))

    def other(self, rec):
        if "session_state" not in rec:  # a replica's or the storage's state, not a client's
            return
        c = rec["node"]
        if not rec.get("holds_lock"):
            self.believed.pop(c, None)
            return
        g = rec.get("token")
        if g is None:
            return
        if self.granted.get(g) != c:
            who = self.granted.get(g)
            self.report(rec["t"], [c], f"{c} believes it holds the lock with generation {g}, "
                        + (f"which the database granted to {who}" if who else
                           "which no committed acquire granted"))
        for other, og in self.believed.items():
            if other != c and og == g:
                self.report(rec["t"], [c, other], f"{c} and {other} both hold the lock with "
                            f"generation {g}")
        self.believed[c] = g


class LockDelayRespected(_LockHistory):
    name = "Lock-delay respected"
    explains = ("A lock whose holder's session was lost without releasing it is not taken again "
                "within the lock-delay of the loss.")

    def __init__(self, seed, servers, lock_delay_ms: float):
        super().__init__(seed, servers)
        self.delay_us = round(lock_delay_ms * 1000)
        self.lost: dict[str, tuple[int, str]] = {}  # lock -> (loss time µs, session)

    def on_lost(self, lock, rec):
        self.lost[lock] = (round(rec["at_ms"] * 1000), rec["session"])

    def on_acquire(self, rec):
        lost = self.lost.pop(rec["lock"], None)
        if lost is None:
            return
        at_us, s = lost
        t_us = round(rec["t"] * 1000)
        if t_us < at_us + self.delay_us:
            self.report(rec["t"], [rec["node"]], f"{rec['lock']} taken by {rec.get('client')} "
                        f"{(t_us - at_us) / 1000:g} ms after {s}'s session was lost holding it "
                        f"(lock-delay {self.delay_us / 1000:g} ms)")


CHECKERS = (OneMasterPerEpoch, DatabasePrefix, FencingTokens, OneLockHolder, LockDelayRespected)
CHUBBY_INVARIANTS = tuple((c.name, c.explains) for c in CHECKERS)


def make_checkers(seed, topology, config):
    ids = topology.ids
    return [OneMasterPerEpoch(seed, ids), DatabasePrefix(seed, ids), FencingTokens(seed, ids),
            OneLockHolder(seed, ids), LockDelayRespected(seed, ids, config.lock_delay_ms)]
