"""The generic fault actions, for every protocol and every node kind.

    crash, restart, pause, resume (`node`)        the kernel's node lifecycle
    partition (`groups`)                           nodes not named form one more group
    cut (`from`, `to`, `both`)                     a link cut one way or both
    heal (every partition and cut; with `from`, `to`, `both` just that link)
    set_link (`from`, `to`, `both`, `latency_ms`, `loss`, `duplicate`; "*" to "*" is every link)
    crash_target (`target`, `within_ms`)           crash whichever node the protocol's target
                                                   picker names, at a random instant

Each is a model (validated once, fields named in errors), knows which of its fields name nodes, and
applies itself to the kernel (`apply(world)`); the kernel has no list of them. The nemesis speaks
this same vocabulary.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, field_validator, model_validator

from .actions import Action, Need
from .network import ms_to_us
from .validation import ScenarioError


class NodeAction(Action):
    """Crash (volatile state lost, persistent state kept), restart, pause (stop-the-world: what
    arrives is held), resume."""

    do: Literal["crash", "restart", "pause", "resume"]
    node: str

    def apply(self, world) -> None:
        getattr(world, self.do)(self.node)


def _need_link(a: Action, where: str, need: Need) -> None:
    need("from", a.src)
    need("to", a.dst)
    if a.src == a.dst:
        raise ScenarioError(f"{where}.to: a link joins two different nodes")


class Partition(Action):
    do: Literal["partition"]
    groups: tuple[Annotated[tuple[str, ...], Field(min_length=1)], ...] = Field(min_length=1)

    def check_nodes(self, where: str, need: Need) -> None:
        seen: set[str] = set()
        for g, group in enumerate(self.groups):
            for nid in group:
                need(f"groups[{g}]", nid)
                if nid in seen:
                    raise ScenarioError(f"{where}.groups[{g}]: node {nid!r} is in two groups")
                seen.add(nid)

    def apply(self, world) -> None:
        world.network.partition([list(g) for g in self.groups])


class Cut(Action):
    do: Literal["cut"]
    src: str = Field(alias="from")
    dst: str = Field(alias="to")
    both: bool = True

    def check_nodes(self, where: str, need: Need) -> None:
        _need_link(self, where, need)

    def apply(self, world) -> None:
        world.network.cut(self.src, self.dst, self.both)


class Heal(Action):
    """Heal every partition and cut, or with `from`/`to` only that link (`both` ways by default)."""

    do: Literal["heal"]
    src: str | None = Field(None, alias="from")
    dst: str | None = Field(None, alias="to")
    both: bool | None = None  # with from/to: True unless given

    @model_validator(mode="after")
    def _both_ends(self) -> "Heal":
        if (self.src is None) != (self.dst is None):
            raise ValueError("to heal one link give both 'from' and 'to'")
        return self

    def check_nodes(self, where: str, need: Need) -> None:
        if self.src is not None:
            need("from", self.src)
            need("to", self.dst)

    def apply(self, world) -> None:
        if self.src is None:
            world.network.heal()
        else:
            world.network.heal_link(self.src, self.dst, self.both is not False)


class SetLink(Action):
    do: Literal["set_link"]
    src: str = Field(alias="from")
    dst: str = Field(alias="to")
    both: bool = True
    latency_ms: tuple[float, float] | None = None
    loss: float | None = Field(None, ge=0, le=1)
    duplicate: float | None = Field(None, ge=0, le=1)

    @field_validator("latency_ms")
    @classmethod
    def _latency(cls, v):
        if v is not None and not (0 <= v[0] <= v[1] <= 60_000):
            raise ValueError("latency_ms must be [min, max] with 0 <= min <= max <= 60000")
        return v

    def check_nodes(self, where: str, need: Need) -> None:
        if self.src == "*" or self.dst == "*":
            if self.src != self.dst:
                raise ScenarioError(f"{where}.from: use \"*\" for both ends to change every link")
        else:
            _need_link(self, where, need)

    def apply(self, world) -> None:
        lat = (ms_to_us(self.latency_ms[0]), ms_to_us(self.latency_ms[1])) if self.latency_ms else None
        if self.src == "*":
            world.network.set_all(self.loss, self.duplicate, lat)
        else:
            world.network.set_link(self.src, self.dst, self.both, lat, self.loss, self.duplicate)


class CrashTarget(Action):
    """Crash the node a protocol's nemesis target names (`target`, one of its `nemesis_targets`;
    by default the first, the one the nemesis aims at) at an instant drawn uniformly from
    [at, at + within_ms), from the run's `faults` RNG stream. The node is picked at that instant
    (the first the picker names; nothing happens if it names none), and the crash is recorded then
    as a `fault` record `crash` with `"by": "crash_target"`.

    This is how an experiment crashes a node by its part in the protocol without knowing in
    advance which node plays it, at a random point of a period (docs/figure16.md)."""

    do: Literal["crash_target"]
    target: str | None = None
    within_ms: float = Field(0, ge=0, le=3_600_000)

    def check_protocol(self, spec, where: str) -> None:
        names = list(spec.nemesis_targets)
        if not names:
            raise ScenarioError(f"{where}.do: {spec.name} names no target to crash")
        if self.target is not None and self.target not in names:
            raise ScenarioError(f"{where}.target: {spec.name} has no target {self.target!r} "
                                f"(known: {', '.join(names)})")

    def apply(self, world) -> None:
        delay = world.fault_draw_us(ms_to_us(self.within_ms))
        world.later(delay, AimedCrash(target=self.target or next(iter(world.protocol.nemesis_targets))))


class AimedCrash(Action):
    """The second half of `crash_target` (queued by it, not a scenario action): pick and crash."""

    do: Literal["aimed_crash"] = "aimed_crash"
    target: str

    def apply(self, world) -> None:
        nodes = world.protocol.nemesis_targets[self.target](world)
        if nodes:
            world.apply_now(NodeAction(do="crash", node=nodes[0]), "crash_target")


FAULT_ACTIONS = (NodeAction, Partition, Cut, Heal, SetLink, CrashTarget)
