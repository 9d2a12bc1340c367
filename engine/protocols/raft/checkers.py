"""Raft's safety properties (extended paper, Figure 3), one checker each.

They read `state` records only. `RaftMirror` folds those records into a picture of every node's
log, term, role and commit index; it is an observer too, runs first, and checks nothing. Each
checker then looks at the change the mirror just applied.
"""

from __future__ import annotations

import orjson

from ...checkers.base import Checker


def entry_key(entry) -> tuple:
    """An entry's identity: its term and its command's fields (a no-op is just its term)."""
    cmd = entry[1]
    if cmd is None:
        return (entry[0],)
    try:
        v = cmd["value"]
        return (entry[0], cmd["client"], cmd["req"], cmd["op"], cmd["key"],
                tuple(v) if isinstance(v, list) else v)
    except (KeyError, TypeError):
        return (entry[0], orjson.dumps(cmd, option=orjson.OPT_SORT_KEYS))


class RaftMirror(Checker):
    """What the records say about each node; no invariant of its own."""

    name = "mirror"
    shown = False

    def __init__(self, seed, servers):
        super().__init__(seed, servers)
        self.term = {n: 0 for n in servers}
        self.role = {n: "follower" for n in servers}
        self.commit = {n: 0 for n in servers}
        self.log: dict[str, list[tuple]] = {n: [] for n in servers}
        # prefix[n][i] names log[:i+1] of node n: equal names <=> equal prefixes. A name is a small
        # int handed out in order of first appearance for each (name of the shorter prefix, entry),
        # so it is exact (no hash collisions) and the same in every process.
        self.prefix: dict[str, list[int]] = {n: [] for n in servers}
        self._prefix_names: dict[tuple, int] = {}
        self._interned: dict[tuple, tuple] = {}  # one key object per distinct entry: small snapshots
        # The change the last record made (read by the checkers right after).
        self.node: str | None = None
        self.prev_role = self.prev_term = self.prev_commit = None
        self.log_keep = self.log_old_len = 0
        self.log_changed = False

    def observe(self, rec):
        if rec["type"] != "state":
            self.node = None
            return
        n = rec["node"]
        self.node = n
        self.prev_role, self.prev_term, self.prev_commit = self.role[n], self.term[n], self.commit[n]
        self.role[n], self.term[n], self.commit[n] = rec["role"], rec["term"], rec["commit"]
        lg = rec.get("log")
        self.log_changed = lg is not None
        if lg is not None:
            keep = lg["keep"]
            log, pre = self.log[n], self.prefix[n]
            self.log_keep, self.log_old_len = keep, len(log)
            del log[keep:]
            del pre[keep:]
            h = pre[-1] if pre else 0
            interned = self._interned
            names = self._prefix_names
            for e in lg["append"]:
                k = entry_key(e)
                k = interned.setdefault(k, k)
                log.append(k)
                h = names.setdefault((h, k), len(names) + 1)
                pre.append(h)


class _RaftChecker(Checker):
    def __init__(self, seed, servers, mirror: RaftMirror):
        super().__init__(seed, servers)
        self.m = mirror


class ElectionSafety(_RaftChecker):
    """At most one leader can be elected in a given term (Figure 3; §5.2)."""

    name = "Election Safety"
    explains = "At most one leader can be elected in a given term."

    def __init__(self, *a):
        super().__init__(*a)
        self.leader_of: dict[int, str] = {}

    def observe(self, rec):
        n = self.m.node
        if n is None or rec["role"] != "leader":
            return
        term = rec["term"]
        other = self.leader_of.setdefault(term, n)
        if other != n:
            self.report(rec["t"], [other, n], f"{other} and {n} were both leader in term {term}")


class LeaderAppendOnly(_RaftChecker):
    """A leader never overwrites or deletes entries in its log; it only appends (Figure 3; §5.3)."""

    name = "Leader Append-Only"
    explains = "A leader never overwrites or deletes entries in its log; it only appends new ones."

    def observe(self, rec):
        m = self.m
        n = m.node
        if n is None or not m.log_changed:
            return
        if (m.prev_role == "leader" and rec["role"] == "leader" and m.prev_term == rec["term"]
                and m.log_keep < m.log_old_len):
            self.report(rec["t"], [n], f"leader {n} (term {rec['term']}) removed entries "
                        f"{m.log_keep + 1}..{m.log_old_len} of its log")


class LogMatching(_RaftChecker):
    """If two logs contain an entry with the same index and term, the logs are identical in all
    entries up through that index (Figure 3; §5.3)."""

    name = "Log Matching"
    explains = ("If two logs have an entry with the same index and term, they are identical up "
                "to that index.")

    def __init__(self, *a):
        super().__init__(*a)
        self.first: dict[tuple[int, int], tuple[int, str]] = {}

    def observe(self, rec):
        m = self.m
        n = m.node
        if n is None or not m.log_changed or self.violations:
            return
        log, pre = m.log[n], m.prefix[n]
        for i in range(m.log_keep, len(log)):
            key = (i + 1, log[i][0])
            seen = self.first.setdefault(key, (pre[i], n))
            if seen[0] != pre[i]:
                self.report(rec["t"], [seen[1], n], f"{seen[1]} and {n} both hold an entry at "
                            f"index {i + 1} with term {log[i][0]}, but their logs differ up to it")
                return


class LeaderCompleteness(_RaftChecker):
    """If a log entry is committed in a given term, it is present in the logs of the leaders of
    all higher terms (Figure 3; §5.4)."""

    name = "Leader Completeness"
    explains = "A committed entry is present in the log of every leader of a later term."

    def __init__(self, *a):
        super().__init__(*a)
        # index -> (entry key, term of the node that first reported it committed: the leader
        # that committed it, whose term is the term the entry was committed in)
        self.committed: dict[int, tuple[tuple, int]] = {}

    def _check_leader(self, n: str, t: float, indices) -> bool:
        log, term = self.m.log[n], self.m.term[n]
        for i in indices:
            e, committed_in = self.committed[i]
            if committed_in >= term:
                continue
            if i > len(log) or log[i - 1] != e:
                self.report(t, [n], f"{n} is leader of term {term} without the entry committed "
                            f"at index {i} in term {committed_in}")
                return False
        return True

    def observe(self, rec):
        m = self.m
        n = m.node
        if n is None or self.violations or rec["role"] == "down":
            return
        c, log = rec["commit"], m.log[n]
        becomes_leader = rec["role"] == "leader" and (m.prev_role != "leader" or m.prev_term != rec["term"])
        if c <= len(self.committed) and not becomes_leader:
            return  # nothing newly committed, no new leader: nothing to check
        new = []
        for i in range(len(self.committed) + 1, min(c, len(log)) + 1):
            self.committed[i] = (log[i - 1], rec["term"])
            new.append(i)
        if becomes_leader:
            self._check_leader(n, rec["t"], sorted(self.committed))
        elif new:
            for other in self.servers:
                if m.role[other] == "leader" and not self._check_leader(other, rec["t"], new):
                    return


class StateMachineSafety(_RaftChecker):
    """If a server has applied a log entry at a given index, no other server ever applies a
    different entry for that index (Figure 3; §5.4.3)."""

    name = "State Machine Safety"
    explains = "No two servers apply different entries at the same log index."

    def __init__(self, *a):
        super().__init__(*a)
        self.applied: dict[int, tuple[tuple, str]] = {}

    def observe(self, rec):
        m = self.m
        n = m.node
        if n is None or self.violations:
            return
        c = rec["commit"]
        if c == m.prev_commit:
            return  # nothing newly applied
        lo = 0 if m.prev_commit is None or m.prev_commit > c else m.prev_commit
        log = m.log[n]
        for i in range(lo + 1, min(c, len(log)) + 1):
            e = log[i - 1]
            first = self.applied.setdefault(i, (e, n))
            if first[0] != e:
                self.report(rec["t"], [first[1], n], f"{first[1]} applied (term {first[0][0]}) and "
                            f"{n} applied (term {e[0]}) different entries at index {i}")
                return


RAFT_CHECKERS = (ElectionSafety, LeaderAppendOnly, LogMatching, LeaderCompleteness, StateMachineSafety)
RAFT_INVARIANTS = tuple((c.name, c.explains) for c in RAFT_CHECKERS)


def make_raft_checkers(seed: int, servers: list[str]) -> list[Checker]:
    mirror = RaftMirror(seed, servers)
    return [mirror] + [cls(seed, servers, mirror) for cls in RAFT_CHECKERS]
