"""Scenarios: the JSON a run is made from, and what a share link carries. One envelope for every
protocol:

    {"protocol": "raft", "seed": 7, "duration_ms": 60000,
     "nodes": 5,                      (or "topology": {...}, the protocol's own shape)
     "config": {...},                 the protocol's config model, validated strictly
     "network": {"latency_ms_min", "latency_ms_max", "loss", "duplicate"},
     "storage": {"latency_ms_min", "latency_ms_max", "dist"},   (optional: engine/storage.py)
     "workload": {"kind": "kv", ...}, one of the protocol's workload kinds
     "nemesis": {...}, "actions": [...], "title", "notes", "suggest"}

Everything is validated here, once, with pydantic models that forbid unknown fields. The protocol's
spec (`engine/protocols/`) supplies the config model, the topology, its actions and its workload
kinds; the generic faults are `engine/faults.py`, message-level control `engine/manual.py`. A bad value raises `ScenarioError` whose message
names the field (`actions[2].node: unknown node 'n9' (nodes are n1..n5)`, `config.heartbeat_ms:
...`).

Older shapes are converted on load: a protocol's `upgrade` rewrites its own (Raft's first scenarios
carried the link defaults in `config`), and a workload without `kind` is the protocol's default
workload.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal, Union, get_args

from pydantic import (BaseModel, Field, PrivateAttr, SerializeAsAny, TypeAdapter, ValidationError,
                      model_validator)

from .actions import Action, action_to_dict
from .faults import FAULT_ACTIONS
from .manual import MANUAL_ACTIONS
from .protocols import DEFAULT_PROTOCOL, ProtocolSpec, Topology, get_protocol
from .storage import StorageConfig
from .validation import ScenarioError, Strict, format_error, validate
from .workloads import get_workload


class NetworkConfig(Strict):
    """The default link: latency drawn uniformly from [min, max] per message, loss and
    duplication probabilities (links can be changed later by `set_link`)."""

    latency_ms_min: float = Field(10, ge=0, le=60_000)
    latency_ms_max: float = Field(15, ge=0, le=60_000)
    loss: float = Field(0.0, ge=0, le=1)
    duplicate: float = Field(0.0, ge=0, le=1)

    @model_validator(mode="after")
    def _ranges(self) -> "NetworkConfig":
        if self.latency_ms_min > self.latency_ms_max:
            raise ValueError("latency_ms_min must not exceed latency_ms_max")
        return self


FAULTS = ("crash", "partition", "cut", "loss", "pause")


class Nemesis(Strict):
    """Random faults every `interval_ms` until `heal_ms`, then everything heals."""

    interval_ms: float = Field(1000, gt=0, le=3_600_000)
    faults: tuple[Literal["crash", "partition", "cut", "loss", "pause"], ...] = FAULTS
    heal_ms: float = Field(50_000, ge=0)


# --- the actions one protocol accepts ----------------------------------------------------------

class ActionSet:
    """The generic faults, message-level control and a protocol's own actions, validated by their
    `do` tag."""

    def __init__(self, spec: ProtocolSpec):
        classes = FAULT_ACTIONS + MANUAL_ACTIONS + tuple(spec.actions)
        self.tags: list[str] = []
        for c in classes:
            for tag in get_args(c.model_fields["do"].annotation):
                if tag in self.tags:
                    raise ValueError(f"protocol {spec.name}: two actions are tagged {tag!r}")
                self.tags.append(tag)
        union = Annotated[Union[classes], Field(discriminator="do")]
        self.one = TypeAdapter(union)
        self.many = TypeAdapter(tuple[union, ...])
        self.skip = set(self.tags) | {c.__name__ for c in classes}


_ACTION_SETS: dict[ProtocolSpec, ActionSet] = {}


def action_set(spec: ProtocolSpec) -> ActionSet:
    s = _ACTION_SETS.get(spec)
    if s is None:
        s = _ACTION_SETS[spec] = ActionSet(spec)
    return s


def _spec(protocol: str | ProtocolSpec) -> ProtocolSpec:
    return protocol if isinstance(protocol, ProtocolSpec) else get_protocol(protocol)


# --- the envelope ------------------------------------------------------------------------------

class LessonStep(Strict):
    """One step of a lesson a presenter walks a class through: what to say (`caption`), where
    the run pauses (`until_ms`; none: it runs on), a question for the class. The step's actions
    are written with it in the file and join the scenario's `actions` when it is read (so a
    stepped lesson runs, replays and shares like any scenario); in `to_dict` they are there."""
    caption: str = Field(max_length=1000)
    until_ms: float | None = Field(None, gt=0)
    question: str | None = Field(None, max_length=400)


class Scenario(Strict):
    protocol: str = DEFAULT_PROTOCOL
    nodes: int = Field(5, ge=1, le=51)
    topology: dict[str, Any] | None = None  # for protocols whose nodes are not `nodes` servers
    seed: int = Field(1, ge=0, le=2**63 - 1)
    duration_ms: float = Field(60_000, gt=0, le=86_400_000)
    config: SerializeAsAny[BaseModel]  # the protocol's config model (filled in on validation)
    network: NetworkConfig = NetworkConfig()
    storage: StorageConfig | None = None  # write latency (engine/storage.py); none: writes are instant
    workload: SerializeAsAny[BaseModel] | None = None  # one of the protocol's workload models
    nemesis: Nemesis | None = None
    actions: tuple[SerializeAsAny[Action], ...] = ()
    title: str | None = Field(None, max_length=200)
    notes: str | None = Field(None, max_length=4000)
    suggest: str | None = Field(None, max_length=400)
    steps: tuple[LessonStep, ...] = ()

    _layout: Topology | None = PrivateAttr(None)

    @model_validator(mode="before")
    @classmethod
    def _envelope(cls, data: Any) -> Any:
        """Resolve the protocol, convert older shapes, and validate the parts the protocol
        defines (config, workload, actions) with their own models."""
        if not isinstance(data, dict):
            return data  # pydantic names the problem
        try:
            spec = get_protocol(data.get("protocol", DEFAULT_PROTOCOL))
        except ValueError as e:
            raise ValueError(f"protocol: {e}") from None
        given = data
        if spec.upgrade is not None:
            data = spec.upgrade(data)
        data = dict(data)
        data["config"] = validate(spec.config_model, data.get("config", {}), "config")
        data["network"] = _network(data.get("network", {}), given)
        wl = data.get("workload")
        if wl is not None:
            data["workload"] = _workload(spec, wl)
        raw = data.get("actions", ())
        if raw:
            aset = action_set(spec)
            try:
                data["actions"] = aset.many.validate_python(raw)
            except ValidationError as e:
                raise ValueError(format_error(e, "actions", aset.skip)) from None
        if data.get("steps"):
            data = _steps(spec, data)
        return data

    @model_validator(mode="after")
    def _actions_name_real_nodes(self) -> "Scenario":
        self._layout = get_protocol(self.protocol).topology(self)
        ids = self._layout.ids
        known = frozenset(ids)
        spec = get_protocol(self.protocol)
        for i, a in enumerate(self.actions):
            check_action_nodes(a, ids, f"actions[{i}]", known)
            a.check_protocol(spec, f"actions[{i}]")
        return self

    @property
    def layout(self) -> Topology:
        """The nodes and links this scenario runs (the protocol's `topology(scenario)`)."""
        return self._layout

    @property
    def node_ids(self) -> list[str]:
        return self._layout.ids

    def to_dict(self) -> dict:
        return self.model_dump(mode="json", by_alias=True, exclude_none=True)

    def with_(self, **changes) -> "Scenario":
        data = self.to_dict()
        data.update(changes)
        return parse_scenario(data)


def _steps(spec: ProtocolSpec, data: dict) -> dict:
    """A stepped lesson: each step's `actions` (validated, named `steps[i].actions[j]`) join the
    scenario's, in time order (stable: the scenario's own first, then the steps' in order)."""
    steps = data["steps"]
    if not isinstance(steps, (list, tuple)):
        raise ValueError("steps: a list of {caption, until_ms?, question?, actions?}")
    acts = list(data.get("actions", ()))
    out, last = [], 0.0
    aset = action_set(spec)
    for i, st in enumerate(steps):
        if not isinstance(st, dict):
            raise ValueError(f"steps[{i}]: an object with a caption")
        st = dict(st)
        raw = st.pop("actions", ())
        if raw:
            try:
                acts += list(aset.many.validate_python(raw))
            except ValidationError as e:
                raise ValueError(format_error(e, f"steps[{i}].actions", aset.skip)) from None
        until = st.get("until_ms")
        if isinstance(until, (int, float)) and not isinstance(until, bool):
            if until <= last:
                raise ValueError(f"steps[{i}].until_ms: {until:g} is not after the previous "
                                 f"step's pause ({last:g} ms)")
            last = float(until)
        out.append(st)
    data = dict(data, steps=out)
    if acts:
        data["actions"] = tuple(sorted(acts, key=lambda a: a.at))
    return data


def _network(net: Any, given: dict) -> NetworkConfig:
    """The network part; a field an older shape gave in `config` is named there in errors."""
    try:
        return NetworkConfig.model_validate(net)
    except ValidationError as e:
        loc = e.errors()[0]["loc"]
        old_cfg, old_net = given.get("config"), given.get("network")
        if loc:
            moved = (isinstance(old_cfg, dict) and loc[0] in old_cfg
                     and not (isinstance(old_net, dict) and loc[0] in old_net))
        else:  # about the whole: from config if all of it came from there
            moved = old_net is None and isinstance(net, dict) and bool(net)
        raise ScenarioError(format_error(e, "config" if moved else "network")) from None


def _workload(spec: ProtocolSpec, wl: Any) -> BaseModel:
    kinds = spec.workloads
    if not kinds:
        raise ScenarioError(f"workload: {spec.name} takes no workload")
    kind = wl.get("kind", kinds[0]) if isinstance(wl, dict) else kinds[0]
    if kind not in kinds:
        raise ScenarioError(f"workload.kind: {spec.name} takes workloads of kind "
                            f"{', '.join(map(repr, kinds))}, not {kind!r}")
    if isinstance(wl, dict) and "kind" not in wl:
        wl = {"kind": kind, **wl}
    return validate(get_workload(kind).model, wl, "workload")


def _span(ids: list[str]) -> str:
    """`n1..n5` for numbered nodes, else the ids themselves."""
    if not ids:
        return "none"
    stem = ids[0].rstrip("0123456789")
    if len(ids) > 2 and ids == [f"{stem}{i}" for i in range(1, len(ids) + 1)]:
        return f"{ids[0]}..{ids[-1]}"
    return ", ".join(ids[:12]) + (", ..." if len(ids) > 12 else "")


def check_action_nodes(a: Action, node_ids: list[str], where: str,
                       known: frozenset[str] | None = None) -> None:
    """Raise ScenarioError naming the field when an action refers to a node that does not exist.
    (`known` is `set(node_ids)`, passed in when checking many actions.)"""
    if known is None:
        known = frozenset(node_ids)

    def need(field: str, nid: str) -> None:
        if nid not in known:
            raise ScenarioError(f"{where}.{field}: unknown node {nid!r} (nodes are {_span(node_ids)})")

    a.check_nodes(where, need)


def parse_scenario(data: Any) -> Scenario:
    """Validate a scenario dict (or JSON text). Raises ScenarioError naming the bad field."""
    if isinstance(data, (str, bytes)):
        import orjson

        try:
            data = orjson.loads(data)
        except orjson.JSONDecodeError as e:
            raise ScenarioError(f"scenario: not valid JSON ({e})") from None
    if not isinstance(data, dict):
        raise ScenarioError("scenario: expected a JSON object")
    try:
        return Scenario.model_validate(data)
    except ValidationError as e:
        raise ScenarioError(format_error(e)) from None


def parse_action(data: Any, node_ids: list[str], where: str = "action",
                 protocol: str | ProtocolSpec = DEFAULT_PROTOCOL) -> Action:
    """Validate one action of `protocol` (the browser's clicks, a re-enacted timeline). Raises
    ScenarioError naming the field."""
    aset = action_set(_spec(protocol))
    if not isinstance(data, dict):
        raise ScenarioError(f"{where}: expected a JSON object")
    if "do" not in data:
        raise ScenarioError(f"{where}.do: missing (one of {', '.join(aset.tags)})")
    try:
        a = aset.one.validate_python(data)
    except ValidationError as e:
        raise ScenarioError(format_error(e, where, aset.skip)) from None
    check_action_nodes(a, node_ids, where)
    a.check_protocol(_spec(protocol), where)
    return a


__all__ = ["Scenario", "ScenarioError", "NetworkConfig", "Nemesis", "FAULTS", "parse_scenario",
           "parse_action", "check_action_nodes", "action_to_dict", "action_set"]
