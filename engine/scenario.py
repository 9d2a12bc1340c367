"""Scenarios: the JSON a run is made from, and what a share link carries.

    {"protocol": "raft", "nodes": 5, "seed": 7, "duration_ms": 60000,
     "config": {...}, "workload": {...}, "nemesis": {...}, "actions": [...]}

Everything is validated here, once, with pydantic models that forbid unknown fields. A bad value
raises `ScenarioError` whose message names the field (`actions[2].node: unknown node 'n9' ...`).
"""

from __future__ import annotations

from typing import Annotated, Any, Literal, Union

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

MUTATIONS = {
    "commit_previous_term": "The leader counts replicas of entries from earlier terms when it "
    "advances the commit index (the bug of the paper's Figure 8).",
    "vote_without_log_check": "Voters grant votes without checking that the candidate's log is at "
    "least as up-to-date as theirs (§5.4.1's election restriction is skipped).",
    "forget_vote_on_restart": "votedFor is not kept on stable storage, so a restarted node may vote "
    "twice in the same term.",
}


class ScenarioError(ValueError):
    """A scenario or action was rejected; the message names the field that was wrong."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True, frozen=True, allow_inf_nan=False)


class RaftConfig(_Strict):
    """Timings, link defaults and protocol switches for a Raft cluster (units last)."""

    election_timeout_ms_min: float = Field(150, gt=0, le=60_000)
    election_timeout_ms_max: float = Field(300, gt=0, le=60_000)
    heartbeat_ms: float = Field(50, gt=0, le=60_000)
    latency_ms_min: float = Field(10, ge=0, le=60_000)
    latency_ms_max: float = Field(15, ge=0, le=60_000)
    loss: float = Field(0.0, ge=0, le=1)
    duplicate: float = Field(0.0, ge=0, le=1)
    pre_vote: bool = False
    check_quorum: bool = False
    max_entries_per_append: int = Field(64, ge=1, le=10_000)
    client_timeout_ms: float = Field(1000, gt=0, le=600_000)
    mutations: tuple[str, ...] = ()

    @field_validator("mutations")
    @classmethod
    def _known_mutations(cls, v: tuple[str, ...]) -> tuple[str, ...]:
        for m in v:
            if m not in MUTATIONS:
                raise ValueError(f"unknown mutation {m!r} (known: {', '.join(sorted(MUTATIONS))})")
        return tuple(sorted(set(v)))

    @model_validator(mode="after")
    def _ranges(self) -> "RaftConfig":
        if self.election_timeout_ms_min > self.election_timeout_ms_max:
            raise ValueError("election_timeout_ms_min must not exceed election_timeout_ms_max")
        if self.latency_ms_min > self.latency_ms_max:
            raise ValueError("latency_ms_min must not exceed latency_ms_max")
        return self


class Workload(_Strict):
    """Clients issuing read/write/cas on a few keys; `rate_per_s` is the total over all clients."""

    clients: int = Field(3, ge=0, le=100)
    rate_per_s: float = Field(20, ge=0, le=10_000)
    keys: int = Field(3, ge=1, le=100)


FAULTS = ("crash", "partition", "cut", "loss", "pause")


class Nemesis(_Strict):
    """Random faults every `interval_ms` until `heal_ms`, then everything heals."""

    interval_ms: float = Field(1000, gt=0, le=3_600_000)
    faults: tuple[Literal["crash", "partition", "cut", "loss", "pause"], ...] = FAULTS
    heal_ms: float = Field(50_000, ge=0)


# --- actions: the vocabulary shared by scenario files, the browser and the nemesis -------------

class _Action(_Strict):
    at: float = Field(0, ge=0, le=86_400_000)


class NodeAction(_Action):
    do: Literal["crash", "restart", "pause", "resume", "timeout"]
    node: str


class Partition(_Action):
    do: Literal["partition"]
    groups: tuple[Annotated[tuple[str, ...], Field(min_length=1)], ...] = Field(min_length=1)


class Cut(_Action):
    do: Literal["cut"]
    src: str = Field(alias="from")
    dst: str = Field(alias="to")
    both: bool = True


class Heal(_Action):
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


MAX_VALUE = 2**53  # client values are integers a browser can hold exactly


def _is_value(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool) and -MAX_VALUE <= v <= MAX_VALUE


class Request(_Action):
    do: Literal["request"]
    node: str
    op: Literal["read", "write", "cas"] = "write"
    key: str = Field("k1", min_length=1, max_length=32, pattern=r"^[\w.:-]+$")
    value: Any = None

    @model_validator(mode="after")
    def _value_shape(self) -> "Request":
        if self.op == "read" and self.value is not None:
            raise ValueError("a read takes no 'value' (leave it out or null)")
        if self.op == "write" and not _is_value(self.value):
            raise ValueError(f"a write needs an integer 'value' between -{MAX_VALUE} and {MAX_VALUE}")
        if self.op == "cas" and not (
            isinstance(self.value, (list, tuple)) and len(self.value) == 2
            and all(_is_value(v) for v in self.value)
        ):
            raise ValueError("a cas needs 'value': [expected, new] (two integers)")
        return self


class SetLink(_Action):
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


class Transfer(_Action):
    do: Literal["transfer"]
    node: str
    to: str


Action = Annotated[
    Union[NodeAction, Partition, Cut, Heal, Request, SetLink, Transfer], Field(discriminator="do")
]


class Scenario(_Strict):
    protocol: Literal["raft"] = "raft"
    nodes: int = Field(5, ge=1, le=51)
    seed: int = Field(1, ge=0, le=2**63 - 1)
    duration_ms: float = Field(60_000, gt=0, le=86_400_000)
    config: RaftConfig = RaftConfig()
    workload: Workload | None = None
    nemesis: Nemesis | None = None
    actions: tuple[Action, ...] = ()
    title: str | None = Field(None, max_length=200)
    notes: str | None = Field(None, max_length=4000)
    suggest: str | None = Field(None, max_length=400)

    @property
    def node_ids(self) -> list[str]:
        return [f"n{i}" for i in range(1, self.nodes + 1)]

    @model_validator(mode="after")
    def _actions_name_real_nodes(self) -> "Scenario":
        known = frozenset(self.node_ids)
        for i, a in enumerate(self.actions):
            check_action_nodes(a, self.node_ids, f"actions[{i}]", known)
        return self

    def to_dict(self) -> dict:
        return self.model_dump(mode="json", by_alias=True, exclude_none=True)

    def with_(self, **changes) -> "Scenario":
        data = self.to_dict()
        data.update(changes)
        return parse_scenario(data)


def check_action_nodes(a: Any, node_ids: list[str], where: str,
                       known: frozenset[str] | None = None) -> None:
    """Raise ValueError naming the field when an action refers to a node that does not exist.
    (`known` is `set(node_ids)`, passed in when checking many actions.)"""
    if known is None:
        known = frozenset(node_ids)

    def need(field: str, nid: str) -> None:
        if nid not in known:
            span = f"{node_ids[0]}..{node_ids[-1]}" if node_ids else "none"
            raise ScenarioError(f"{where}.{field}: unknown node {nid!r} (nodes are {span})")

    fields = a.__dict__  # the validated model's fields (getattr on a pydantic model is slow)
    for field in ("node", "to"):
        if isinstance(fields.get(field), str):
            need(field, fields[field])
    if isinstance(a, Heal) and a.src is not None:
        need("from", a.src)
        need("to", a.dst)
    if isinstance(a, SetLink) and (a.src == "*" or a.dst == "*"):
        if a.src != a.dst:
            raise ScenarioError(f"{where}.from: use \"*\" for both ends to change every link")
    elif isinstance(a, (Cut, SetLink)):
        need("from", a.src)
        need("to", a.dst)
        if a.src == a.dst:
            raise ScenarioError(f"{where}.to: a link joins two different nodes")
    if isinstance(a, Partition):
        seen: set[str] = set()
        for g, group in enumerate(a.groups):
            for nid in group:
                need(f"groups[{g}]", nid)
                if nid in seen:
                    raise ScenarioError(f"{where}.groups[{g}]: node {nid!r} is in two groups")
                seen.add(nid)
    if isinstance(a, Transfer) and a.node == a.to:
        raise ScenarioError(f"{where}.to: cannot transfer leadership to the same node")


def _format_error(e: ValidationError, prefix: str = "") -> str:
    parts = []
    for err in e.errors()[:3]:
        loc = prefix
        for p in err["loc"]:
            if isinstance(p, int):
                loc += f"[{p}]"
            elif p in {"NodeAction", "Partition", "Cut", "Heal", "Request", "SetLink", "Transfer"} \
                    or p in {"crash", "restart", "pause", "resume", "timeout", "partition", "cut",
                             "heal", "request", "set_link", "transfer", "function-after"}:
                continue
            else:
                loc += ("." if loc else "") + str(p)
        msg = err["msg"].removeprefix("Value error, ")
        if err["type"] == "extra_forbidden":
            msg = "unknown field"
        elif err["type"] == "union_tag_invalid":
            msg = f"unknown action {err.get('input', {}).get('do')!r}" if isinstance(err.get("input"), dict) else msg
        parts.append(f"{loc}: {msg}" if loc else msg)
    return "; ".join(parts)


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
        raise ScenarioError(_format_error(e)) from None


_ACTION_ADAPTER = None


def parse_action(data: Any, node_ids: list[str], where: str = "action") -> Any:
    """Validate one action (the browser's clicks, the nemesis's faults). Raises ScenarioError."""
    global _ACTION_ADAPTER
    from pydantic import TypeAdapter

    if _ACTION_ADAPTER is None:
        _ACTION_ADAPTER = TypeAdapter(Action)
    if not isinstance(data, dict):
        raise ScenarioError(f"{where}: expected a JSON object")
    if "do" not in data:
        raise ScenarioError(f"{where}.do: missing (one of crash, restart, pause, resume, timeout, "
                            "partition, cut, heal, request, set_link, transfer)")
    try:
        a = _ACTION_ADAPTER.validate_python(data)
    except ValidationError as e:
        raise ScenarioError(_format_error(e, where)) from None
    check_action_nodes(a, node_ids, where)
    return a


def action_to_dict(a: Any) -> dict:
    return a.model_dump(mode="json", by_alias=True, exclude_none=True)
