"""Linearizability of the key-value history (Herlihy and Wing, 1990).

The search is Wing and Gong's (1993) with Lowe's memoisation (2017), as in porcupine: walk the
history's call/return entries, tentatively linearise a call whose operation is legal in the current
state, lift it and its return out of the list, and backtrack when a return is reached before its
call was linearised; a cache of (set of linearised ops, state) prunes configurations already seen.
Keys are independent registers, so the history is split by key and each part checked on its own
(P-compositionality, Horn and Kroening 2015).

Outcomes: `ok` ops must be linearised between their call and return; `fail` ops did not happen and
are dropped; `info` ops (timeouts) may or may not have happened: their return is at infinity and
the search may leave them out. An `info` read tells nothing and is dropped.
"""

from __future__ import annotations

from .base import Checker

INF = float("inf")


class _Entry:
    __slots__ = ("is_call", "op", "match", "prev", "next", "id")

    def __init__(self, is_call, op, id_):
        self.is_call = is_call
        self.op = op
        self.id = id_
        self.match = self.prev = self.next = None


def _step(state, op):
    """The register model: returns (legal, new state)."""
    f, value, out = op["f"], op["value"], op.get("out")
    if f == "read":
        return out == state, state
    if f == "write":
        return True, value
    if state == value[0]:  # cas
        return True, value[1]
    return False, state


def check_key(ops: list[dict], budget: int = 2_000_000) -> bool | None:
    """ops: dicts with call, ret (INF for info), f, value, out (reads), definite (bool).
    Returns True/False, or None when the search budget ran out."""
    if not ops:
        return True
    events = []
    for i, op in enumerate(ops):
        events.append((op["call"], 0, i, True))
        events.append((op["ret"], 1, i, False))
    events.sort(key=lambda e: (e[0], e[1], e[2]))
    head = _Entry(False, None, -1)
    prev = head
    calls: dict[int, _Entry] = {}
    for _t, _k, i, is_call in events:
        e = _Entry(is_call, ops[i], i)
        if is_call:
            calls[i] = e
        else:
            calls[i].match = e
            e.match = calls[i]
        prev.next = e
        e.prev = prev
        prev = e
    definite_left = sum(1 for op in ops if op["definite"])

    def lift(e):
        e.prev.next = e.next
        if e.next:
            e.next.prev = e.prev
        m = e.match
        m.prev.next = m.next
        if m.next:
            m.next.prev = m.prev

    def unlift(e):
        m = e.match
        m.prev.next = m
        if m.next:
            m.next.prev = m
        e.prev.next = e
        if e.next:
            e.next.prev = e

    cache: set = set()
    stack: list = []
    linearized = 0
    state = None
    entry = head.next
    steps = 0
    while True:
        if definite_left == 0:
            return True
        steps += 1
        if steps > budget:
            return None
        # Backtrack at the end of the list (only info returns, at infinity, remain) or at the
        # return of an op not yet linearised: nothing can go before it on this path.
        if entry is None or (not entry.is_call and entry.op["ret"] != INF):
            if not stack:
                return False
            entry, state = stack.pop()
            linearized &= ~(1 << entry.id)
            if entry.op["definite"]:
                definite_left += 1
            unlift(entry)
            entry = entry.next
        elif entry.is_call:
            legal, new_state = _step(state, entry.op)
            if legal:
                new_lin = linearized | (1 << entry.id)
                key = (new_lin, new_state if not isinstance(new_state, list) else tuple(new_state))
                if key not in cache:
                    cache.add(key)
                    stack.append((entry, state))
                    state = new_state
                    linearized = new_lin
                    if entry.op["definite"]:
                        definite_left -= 1
                    lift(entry)
                    entry = head.next
                    continue
            entry = entry.next
        else:
            entry = entry.next  # an info op's return: it never forces anything


def history_by_key(records: list[dict]) -> dict[str, list[dict]]:
    """Pair invoke records with their completions; drop fails and info reads."""
    open_ops: dict[tuple[str, int], dict] = {}
    done: list[dict] = []
    for r in records:
        k = (r["client"], r.get("req"))
        if r["op"] == "invoke":
            open_ops[k] = {"call": r["t"], "ret": INF, "f": r["f"], "key": r["key"],
                           "value": r["value"], "definite": False}
        else:
            op = open_ops.pop(k, None)
            if op is None:
                continue
            if r["op"] == "ok":
                op["ret"] = r["t"]
                op["definite"] = True
                if op["f"] == "read":
                    op["out"] = r["value"]
                done.append(op)
            elif r["op"] == "info":
                done.append(op)
    done.extend(open_ops.values())  # still pending when the history ends: indefinite
    by_key: dict[str, list[dict]] = {}
    for op in done:
        if op["f"] == "read" and not op["definite"]:
            continue
        by_key.setdefault(op["key"], []).append(op)
    for ops in by_key.values():
        ops.sort(key=lambda o: o["call"])
    return by_key


class LinearizabilityChecker(Checker):
    """The clients' read/write/cas history is linearizable (checked on demand: it is a search)."""

    name = "Linearizability"
    search = True
    record_types = ("client",)
    explains = ("Every client operation appears to take effect at one instant between its "
                "invocation and its response.")

    def __init__(self, seed, servers):
        super().__init__(seed, servers)
        self.records: list[dict] = []
        self._checked_len = -1
        self._result: bool | None = True

    def observe(self, rec):
        if rec["type"] == "client":
            self.records.append(rec)

    def check(self, budget: int = 2_000_000) -> bool | None:
        """Run the search over the history so far; True, False, or None (budget exhausted)."""
        if self._checked_len == len(self.records):
            return self._result
        self._checked_len = len(self.records)
        self.violations = []
        result: bool | None = True
        for key, ops in sorted(history_by_key(self.records).items()):
            r = check_key(ops, budget)
            if r is False:
                first = min(o["call"] for o in ops)
                self.report(max((o["ret"] for o in ops if o["ret"] != INF), default=first), [],
                            f"no linearization of the {len(ops)} operations on key {key!r}")
                result = False
            elif r is None and result is True:
                result = None
        self._result = result
        return result

    @property
    def result(self) -> bool | None:
        """The last search's verdict: True, False, or None (budget ran out); `checked_ops` says how
        many history records it covered (`check()` brings it up to date)."""
        return self._result

    @property
    def checked_ops(self) -> int:
        return max(0, self._checked_len)

    def ops_count(self) -> dict:
        c = {"invoke": 0, "ok": 0, "fail": 0, "info": 0}
        for r in self.records:
            c[r["op"]] = c.get(r["op"], 0) + 1
        return c
