"""Checkers observe records (the trace vocabulary) and report violations. They never change the
world: the kernel calls `observe(rec)` after the fact, and a checker only reads what it is given."""

from __future__ import annotations

from abc import ABC, abstractmethod


class Checker(ABC):
    name = "?"
    explains = ""
    record_types: tuple[str, ...] | None = ("state",)  # the record types it reads; None: all
    # What kind of checker it is (the page reads these, never names): `search` checkers are run
    # on demand (`check(budget)`, verdict in `result`: True, False, or None when the budget ran
    # out); `shown` is False for helpers that report nothing (a mirror of the cluster's state).
    search = False
    shown = True
    # An observer that writes records of its own (the load balancer's `metric` series) names their
    # types in `writes`, appends them, in time order, to its list `out` and counts them in
    # `written`. `out` holds the latest records, not necessarily all: an observer may forget its
    # oldest (so the world's state stays bounded however long it runs), but only as it begins to
    # write new ones (in `catch_up`), so a reader that takes the new records after each record of
    # the run (a trace writer) misses none. Readers keep the count they have read and ask
    # `written_since(count)` (a rewind restores `out` and `written` with the world). Trace
    # writers given the world put them in the trace (`engine.trace.Tap`), and the browser's
    # frames carry them (app/session/frames.py).
    writes: tuple[str, ...] = ()
    out: list[dict]
    written = 0

    def written_since(self, n: int) -> list[dict]:
        """The records written after the first `n` (those `out` still holds)."""
        new = self.written - n
        if new <= 0:
            return []
        out = self.out
        return out[-new:] if new < len(out) else list(out)

    def catch_up(self, t_ms: float) -> None:
        """A writing observer: write now whatever is due by `t_ms`, as its next record of a type
        it reads would make it (so a trace writer can keep time order across the record types
        it does not read). Must not change what it writes, only when."""

    def __init__(self, seed: int, servers: list[str]):
        self.seed = seed
        self.servers = servers
        self.violations: list[dict] = []

    @abstractmethod
    def observe(self, rec: dict) -> None:
        """Read one record (of the types in `record_types`); never change anything."""

    def report(self, t: float, nodes: list[str], detail: str) -> None:
        self.violations.append({"invariant": self.name, "t": t, "nodes": sorted(set(nodes)),
                                "seed": self.seed, "detail": detail})

    def status(self) -> dict:
        return {"name": self.name, "ok": not self.violations, "explains": self.explains,
                "violation": self.violations[0] if self.violations else None}


class LivenessMeasure:
    """Liveness, measured (not a safety check): an observer of records that finds how long after
    the nemesis's final heal (`heal_ms`) the protocol is serving again, in `found_ms` (None while
    not yet). A protocol provides one (`ProtocolSpec.liveness`); the run summary reports it under
    `key`. It is built with the run's topology, the heal time and the protocol's config."""

    key = "?"

    def __init__(self, topology, heal_ms: float, config=None):
        self.heal_ms = heal_ms
        self.found_ms: float | None = None

    def __call__(self, rec: dict) -> None:
        """Read one record (state records, unless the measure says otherwise)."""

    def evaluate(self, t: float) -> None:
        """Decide at `t` (the heal itself) whether the protocol is already serving."""
