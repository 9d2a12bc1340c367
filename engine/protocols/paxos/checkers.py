"""Paxos's safety properties, one checker each. They only read records.

"Chosen" is computed from the acceptors' own `accepted` state records, never from what learners
say: value v is chosen in slot s when q2 acceptors accepted v in one ballot (Voting.tla's
ChosenAt). Votes are history: an acceptor that later accepts something else still voted. The
phase-2 quorum size is the configured q2 (mutations change what the nodes count, not this).

`PaxosMirror` folds state records into each acceptor's promise, its votes and the chosen values;
it runs first and checks nothing. The checkers then look at what the record just changed.
"""

from __future__ import annotations

import orjson

from ...checkers.base import Checker
from ...checkers.linearizability import LinearizabilityChecker
from ...workloads.kv import op_words
from .ballot import as_ballot, label
from .config import ACCEPTOR, PaxosConfig


def value_key(v) -> bytes:
    """A value's identity (commands are dicts; a trace read back has lists for tuples)."""
    return orjson.dumps(v, option=orjson.OPT_SORT_KEYS)


def show(v) -> str:
    """A value in words: `x`, `7`, `no-op`, or a command as `write k1=3` / `cas k1=1->2`."""
    if v is None:
        return "no-op"
    if isinstance(v, dict) and "op" in v and "key" in v:
        return op_words(v)
    s = v if isinstance(v, str) else orjson.dumps(v).decode()
    return s if len(s) <= 60 else s[:57] + "..."


class PaxosMirror(Checker):
    """What the state records say; no invariant of its own."""

    name = "mirror"

    def __init__(self, seed, servers, config: PaxosConfig):
        super().__init__(seed, servers)
        self.acceptors = frozenset(config.members(servers, ACCEPTOR))
        self.q2 = config.quorums(servers).q2
        self.promised: dict[str, tuple | None] = {n: None for n in servers}
        # slot -> ballot -> value key -> acceptors that voted for it (every vote ever cast)
        self.votes: dict[int, dict[tuple, dict[bytes, set[str]]]] = {}
        self.chosen: dict[int, dict[bytes, tuple]] = {}  # slot -> value key -> first ballot chosen at
        self.values: dict[bytes, object] = {}  # value key -> value
        # What the last record changed (read by the checkers right after).
        self.node: str | None = None
        self.prev_promised: tuple | None = None
        self.new_votes: list[tuple[int, tuple, bytes]] = []  # (slot, ballot, value key)
        self.newly_chosen: list[tuple[int, bytes, tuple]] = []  # (slot, value key, ballot)

    def observe(self, rec):
        self.new_votes = []
        self.newly_chosen = []
        if rec["type"] != "state":
            self.node = None
            return
        n = self.node = rec["node"]
        self.prev_promised = self.promised.get(n)
        if "promised" in rec:
            self.promised[n] = as_ballot(rec["promised"])
        acc = rec.get("accepted")
        if not acc or n not in self.acceptors:
            return
        for s, (b, v) in acc.items():
            slot, b, k = int(s), as_ballot(b), value_key(v)
            self.values.setdefault(k, v)
            voters = self.votes.setdefault(slot, {}).setdefault(b, {}).setdefault(k, set())
            if n in voters:
                continue
            voters.add(n)
            self.new_votes.append((slot, b, k))
            chosen = self.chosen.setdefault(slot, {})
            if len(voters) >= self.q2 and k not in chosen:
                chosen[k] = b
                self.newly_chosen.append((slot, k, b))


class _PaxosChecker(Checker):
    def __init__(self, seed, servers, config: PaxosConfig, mirror: PaxosMirror):
        super().__init__(seed, servers)
        self.m = mirror


class AtMostOneChosen(_PaxosChecker):
    """Consensus.tla's safety property, per slot: Cardinality(chosen) <= 1 ("Paxos Made Simple",
    §2.1: "only a single value is chosen")."""

    name = "At Most One Chosen"
    explains = "In each slot at most one value is chosen (accepted by a quorum in one ballot)."

    def observe(self, rec):
        m = self.m
        for slot, k, b in m.newly_chosen:
            chosen = m.chosen[slot]
            if len(chosen) == 2:  # report the first conflict in a slot once
                other = next(x for x in chosen if x != k)
                self.report(rec["t"], [m.node], f"slot {slot}: {show(m.values[other])} was chosen "
                            f"at ballot {label(chosen[other])} and {show(m.values[k])} at "
                            f"{label(b)}")


class OneValuePerBallot(_PaxosChecker):
    """Voting.tla's OneValuePerBallot: two acceptors that vote in the same ballot (and slot) vote
    for the same value."""

    name = "One Value Per Ballot"
    explains = "No two acceptors accept different values in the same ballot and slot."

    def observe(self, rec):
        m = self.m
        for slot, b, k in m.new_votes:
            by_value = m.votes[slot][b]
            if len(by_value) == 2:  # the first conflict in this ballot and slot
                other = next(x for x in by_value if x != k)
                who = sorted(by_value[other])
                self.report(rec["t"], [m.node, *who], f"slot {slot}, ballot {label(b)}: {m.node} "
                            f"accepted {show(m.values[k])} but {', '.join(who)} accepted "
                            f"{show(m.values[other])}")


class PromiseKept(_PaxosChecker):
    """§2.2 P1a: "an acceptor can accept a proposal numbered n iff it has not responded to a
    prepare request having a number greater than n" (Voting.tla's VotesSafe rests on it)."""

    name = "Promise Kept"
    explains = "An acceptor never accepts a proposal with a ballot below the one it promised."

    def observe(self, rec):
        m = self.m
        p = m.prev_promised
        for slot, b, _k in m.new_votes:
            if p is not None and b < p:
                self.report(rec["t"], [m.node], f"{m.node} accepted ballot {label(b)} in slot "
                            f"{slot} after promising {label(p)}")


class LearnedIsChosen(_PaxosChecker):
    """§2.3: a learner must find out that a proposal has been accepted by a majority (here: q2)
    before it learns the value; so every value learned is chosen."""

    name = "Learned Is Chosen"
    explains = "Every value a learner learns has been chosen by a quorum of acceptors."

    def observe(self, rec):
        m = self.m
        if m.node is None or not rec.get("learned"):
            return
        for s, v in rec["learned"].items():
            slot, k = int(s), value_key(v)
            if k not in m.chosen.get(slot, {}):
                self.report(rec["t"], [m.node], f"{m.node} learned {show(v)} in slot {slot}, which "
                            "no quorum of acceptors accepted in one ballot")


class AcceptAfterPromises(Checker):
    """§2.2 Phase 2(a): a proposer sends accept requests for ballot b only once a phase-1 quorum
    (q1) of acceptors promised b. Promises are seen as Promise sends, and, for the proposer's own
    acceptor (its messages to itself do not cross the network), as its `promised` becoming b;
    Accepts as Accept sends, or as the proposer's own acceptor accepting b. A handler's sends are
    recorded before its state record, so an Accept is judged at the next record that is not a
    send or drop."""

    name = "Accept After Promises"
    explains = "A proposer sends Accept for a ballot only after a phase-1 quorum promised it."
    record_types = ("send", "drop", "deliver", "state", "fault", "client")

    def __init__(self, seed, servers, config: PaxosConfig):
        super().__init__(seed, servers)
        self.acceptors = frozenset(config.members(servers, ACCEPTOR))
        self.q1 = config.quorums(servers).q1
        self.promises: dict[tuple, set[str]] = {}  # ballot -> acceptors that promised it
        self.checked: set[tuple] = set()
        self.pending: list[tuple[tuple, str, float]] = []  # (ballot, proposer, t) to judge

    def observe(self, rec):
        typ = rec["type"]
        if typ == "send":
            msg = rec["msg"]
            kind = msg.get("kind")
            if kind == "Promise" and rec["from"] in self.acceptors:
                self.promises.setdefault(as_ballot(msg["ballot"]), set()).add(rec["from"])
            elif kind == "Accept":
                b = as_ballot(msg["ballot"])
                if b not in self.checked:
                    self.pending.append((b, rec["from"], rec["t"]))
            return
        if typ == "drop":
            return
        if typ == "state":
            n = rec["node"]
            p = as_ballot(rec.get("promised"))
            if p is not None and p[1] == n and n in self.acceptors:
                self.promises.setdefault(p, set()).add(n)
            for _s, (b, _v) in (rec.get("accepted") or {}).items():
                b = as_ballot(b)
                if b[1] == n and b not in self.checked:
                    self.pending.append((b, n, rec["t"]))
        if self.pending:
            pending, self.pending = self.pending, []
            for b, sender, t in pending:
                if b in self.checked:
                    continue
                self.checked.add(b)
                got = sorted(self.promises.get(b, ()))
                if len(got) < self.q1:
                    self.report(t, [sender], f"{sender} sent Accept for ballot {label(b)} with "
                                f"{len(got)} promise(s) ({', '.join(got) or 'none'}); q1 is {self.q1}")


PAXOS_CHECKERS = (AtMostOneChosen, OneValuePerBallot, PromiseKept, LearnedIsChosen)


def make_checkers(seed: int, topology, config: PaxosConfig) -> list[Checker]:
    """The mirror first, then one checker per invariant; Multi-Paxos adds linearizability of the
    key-value history."""
    servers = topology.of_kind("server")
    mirror = PaxosMirror(seed, servers, config)
    out: list[Checker] = [mirror] + [cls(seed, servers, config, mirror) for cls in PAXOS_CHECKERS]
    out.append(AcceptAfterPromises(seed, servers, config))
    if config.mode == "multi":
        out.append(LinearizabilityChecker(seed, servers))
    return out


PAXOS_INVARIANTS = tuple((c.name, c.explains) for c in PAXOS_CHECKERS + (AcceptAfterPromises,)) + (
    (LinearizabilityChecker.name, "Multi-Paxos: " + LinearizabilityChecker.explains),)
