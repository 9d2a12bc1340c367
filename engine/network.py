"""The network model: per-link latency, loss, duplication; partitions; one-way cuts.

Latency is drawn uniformly from the link's range for every message, so messages on the same link
can overtake each other (reordering comes from jitter). Partitions put the topology's nodes (of any
kind) in groups; a node not named in any group forms the "rest" group. The workload's clients sit
outside the topology and are never partitioned (they are the users of the service); crashes still
cut them off.
Faults are checked when a message is sent and again when it would be delivered, so a partition
also swallows what is already on the wire.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from ._mypyc import mypyc_attr


def ms_to_us(ms: float) -> int:
    """Milliseconds (scenarios, records) to the kernel's integer microseconds."""
    return int(round(ms * 1000))


@mypyc_attr(native_class=False)  # (compiled, engine/native.py: a frozen dataclass stays Python's)
@dataclass(frozen=True, slots=True)
class LinkSpec:
    latency_us_min: int
    latency_us_max: int
    loss: float = 0.0
    duplicate: float = 0.0

    def as_dict(self) -> dict:
        return {
            "latency_ms": [self.latency_us_min / 1000, self.latency_us_max / 1000],
            "loss": self.loss,
            "duplicate": self.duplicate,
        }


@mypyc_attr(allow_interpreted_subclasses=True, serializable=True)
class Network:
    def __init__(self, default: LinkSpec, servers: list[str]):
        self.servers = servers  # the topology's nodes: what partitions split
        self.default = default
        self.overrides: dict[tuple[str, str], LinkSpec] = {}
        self.group_of: dict[str, int] = {}
        self.cuts: set[tuple[str, str]] = set()
        self._settle()

    def _settle(self) -> None:
        """Recompute what the kernel's fast paths read: `plain` (every link is the default one,
        lossless, duplicate-free and open), `open` (no partition, no cut) and the default latency
        range. Every change below calls it."""
        d = self.default
        self.plain = not (self.overrides or self.group_of or self.cuts or d.loss or d.duplicate)
        self.open = not (self.group_of or self.cuts)
        self.lat_lo = d.latency_us_min
        self.lat_span = d.latency_us_max - d.latency_us_min

    # --- queries (hot path) -------------------------------------------------------------------
    def blocked(self, src: str, dst: str) -> str | None:
        """Why a message from src to dst cannot pass right now ("partition" / "cut"), or None."""
        g = self.group_of
        if g and src in g and dst in g and g[src] != g[dst]:
            return "partition"
        if self.cuts and (src, dst) in self.cuts:
            return "cut"
        return None

    def link(self, src: str, dst: str) -> LinkSpec:
        if self.overrides:
            return self.overrides.get((src, dst), self.default)
        return self.default

    # --- faults -------------------------------------------------------------------------------
    def partition(self, groups: list[list[str]]) -> None:
        named = {n for grp in groups for n in grp}
        rest = [n for n in self.servers if n not in named]
        all_groups = [list(grp) for grp in groups if grp] + ([rest] if rest else [])
        self.group_of = {n: i for i, grp in enumerate(all_groups) for n in grp}
        if len(all_groups) <= 1:
            self.group_of = {}
        self._settle()

    def cut(self, src: str, dst: str, both: bool) -> None:
        self.cuts.add((src, dst))
        if both:
            self.cuts.add((dst, src))
        self._settle()

    def heal(self) -> None:
        """Remove partitions and cuts (link settings stay)."""
        self.group_of = {}
        self.cuts = set()
        self._settle()

    def heal_link(self, src: str, dst: str, both: bool) -> None:
        """Let messages pass from src to dst again (and back, with `both`). A partition is first
        turned into the equivalent one-way cuts, so that one link of it can be healed alone."""
        if self.group_of:
            g = self.group_of
            for a in self.servers:
                for b in self.servers:
                    if a in g and b in g and g[a] != g[b]:
                        self.cuts.add((a, b))
            self.group_of = {}
        self.cuts.discard((src, dst))
        if both:
            self.cuts.discard((dst, src))
        self._settle()

    @staticmethod
    def _changed(spec: LinkSpec, latency_us: tuple[int, int] | None, loss: float | None,
                 duplicate: float | None) -> LinkSpec:
        if latency_us is not None:
            spec = replace(spec, latency_us_min=latency_us[0], latency_us_max=latency_us[1])
        if loss is not None:
            spec = replace(spec, loss=loss)
        if duplicate is not None:
            spec = replace(spec, duplicate=duplicate)
        return spec

    def set_link(self, src: str, dst: str, both: bool, latency_us: tuple[int, int] | None,
                 loss: float | None, duplicate: float | None) -> None:
        for p in [(src, dst), (dst, src)] if both else [(src, dst)]:
            spec = self._changed(self.overrides.get(p, self.default), latency_us, loss, duplicate)
            if spec == self.default:
                self.overrides.pop(p, None)
            else:
                self.overrides[p] = spec
        self._settle()

    def set_all(self, loss: float | None = None, duplicate: float | None = None,
                latency_us: tuple[int, int] | None = None) -> None:
        """Change the default link (the browser's network sliders, the nemesis's loss bursts)."""
        self.default = self._changed(self.default, latency_us, loss, duplicate)
        self._settle()

    # --- pictures -----------------------------------------------------------------------------
    def cut_state(self, a: str, b: str) -> str:
        """none | both | a>b | b>a for the pair (a, b), counting partitions as cuts both ways."""
        ab = self.blocked(a, b) is not None
        ba = self.blocked(b, a) is not None
        if ab and ba:
            return "both"
        if ab:
            return f"{a}>{b}"
        if ba:
            return f"{b}>{a}"
        return "none"

    def view(self) -> dict:
        groups: dict[int, list[str]] = {}
        for n in self.servers:
            if n in self.group_of:
                groups.setdefault(self.group_of[n], []).append(n)
        return {
            "default": self.default.as_dict(),
            "partition": [groups[k] for k in sorted(groups)],
            "cuts": sorted([list(c) for c in self.cuts]),
            "links": sorted([[a, b, s.as_dict()] for (a, b), s in self.overrides.items()]),
        }
