"""The Chubby database the replicas replicate: the master epoch, the open sessions and the locks.

§2.1: "the replicas ... maintain copies of a simple database"; "the master ... initiates reads
and writes" and the replicas "copy updates from the master, sent using the consensus protocol".
Every replica applies the chosen commands in slot order (Multi-Paxos), so every replica's database
goes through the same states. Applying is deterministic: a command carries the times the master
decided it at (`at_ms`, `delay_until_ms`), never the applying replica's clock.

Commands (a no-op is None, as Multi-Paxos fills gaps):

    {"op": "epoch", "node", "ballot"}                       a new master (§2.12 step 1)
    {"op": "open", "session", "client", "req"}              a session opens
    {"op": "acquire", "session", "client", "lock", "req", "at_ms"}
    {"op": "release", "session", "client", "lock", "req"}
    {"op": "expire", "session", "at_ms", "delay_until_ms"}  the master expired a silent session
    {"op": "close", "session", "client", "req"}             a session ends cleanly

Locks (§2.4): each has a holder (a session or None), a generation number bumped at every
acquisition (the sequencer's "lock generation number"), and `delay_until_ms`: when a holder's
session expires without releasing, the lock cannot be taken before then (lock-delay). Only
exclusive mode is modelled.
"""

from __future__ import annotations


class Lock:
    __slots__ = ("holder", "client", "generation", "delay_until_ms")

    def __init__(self):
        self.holder: str | None = None  # the holding session
        self.client: str | None = None  # its client process
        self.generation = 0
        self.delay_until_ms = 0.0

    def as_list(self) -> list:
        return [self.holder, self.client, self.generation, self.delay_until_ms]


class ChubbyDB:
    def __init__(self):
        self.epoch = 0  # bumped by every "epoch" command: the master epoch (§2.12)
        self.master: str | None = None  # who the last epoch command named
        self.sessions: dict[str, str] = {}  # session -> client
        self.locks: dict[str, Lock] = {}

    def lock(self, name: str) -> Lock:
        lk = self.locks.get(name)
        if lk is None:
            lk = self.locks[name] = Lock()
        return lk

    def free_at(self, name: str, at_ms: float) -> bool:
        """Whether `name` can be taken at `at_ms`: no holder, and past any lock-delay."""
        lk = self.locks.get(name)
        return lk is None or (lk.holder is None and at_ms >= lk.delay_until_ms)

    def held_by(self, session: str) -> list[str]:
        return sorted(n for n, lk in self.locks.items() if lk.holder == session)

    def apply(self, cmd: dict) -> dict:
        """Apply one command; returns the outcome (what the txn record and the reply say):
        `ok`, and `generation` for a lock taken, `freed` for the locks a session's end frees."""
        op = cmd["op"]
        if op == "epoch":
            self.epoch += 1
            self.master = cmd["node"]
            return {"ok": True, "epoch": self.epoch}
        s = cmd["session"]
        if op == "open":
            if s in self.sessions:
                return {"ok": True}  # a re-sent open: the same session
            self.sessions[s] = cmd["client"]
            return {"ok": True}
        if op == "acquire":
            lk = self.lock(cmd["lock"])
            if lk.holder == s:
                return {"ok": True, "generation": lk.generation}  # a re-sent acquire
            if s not in self.sessions or not self.free_at(cmd["lock"], cmd["at_ms"]):
                return {"ok": False}
            lk.holder, lk.client = s, cmd["client"]
            lk.generation += 1
            return {"ok": True, "generation": lk.generation}
        if op == "release":
            lk = self.locks.get(cmd["lock"])
            if lk is None or lk.holder != s:
                return {"ok": False}
            lk.holder = lk.client = None  # released: no lock-delay (§2.4)
            return {"ok": True}
        # expire, close: the session ends; its locks are freed (with lock-delay on expiry)
        if s not in self.sessions:
            return {"ok": False, "freed": []}
        del self.sessions[s]
        freed = self.held_by(s)
        for name in freed:
            lk = self.locks[name]
            lk.holder = lk.client = None
            if op == "expire":
                lk.delay_until_ms = cmd["delay_until_ms"]
        return {"ok": True, "freed": freed}

    def view(self) -> dict:
        return {"epoch": self.epoch, "master": self.master, "sessions": dict(sorted(self.sessions.items())),
                "locks": {n: {"holder": lk.holder, "client": lk.client, "generation": lk.generation,
                              "delay_until_ms": lk.delay_until_ms}
                          for n, lk in sorted(self.locks.items())}}

    def digest(self) -> list:
        return [self.epoch, self.master, sorted(self.sessions.items()),
                sorted([n, lk.as_list()] for n, lk in self.locks.items())]
