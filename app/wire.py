"""What the browser may send over the WebSocket, validated with pydantic (see docs/ws-protocol.md).

    {"type": "action",  "action": {"do": "crash", "node": "n3"}}
    {"type": "control", "do": "speed", "value": 0.01}

The action itself is validated by the engine (`Simulation.act`), which names the bad field; here we
check the envelope and the controls. `parse_inbound` turns any bad input into a `BadInput` whose
message is what the `error` frame says.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal, Union

import orjson
from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError, field_validator

from .limits import quote


class BadInput(ValueError):
    """The browser sent something we cannot use; the message names what was wrong."""


class _In(BaseModel):
    # Strict: a boolean is not a number and a string is not a number either (`speed: true` is
    # refused, not read as 1).
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)


class ActionIn(_In):
    type: Literal["action"]
    action: dict[str, Any]


class Play(_In):
    do: Literal["play"]
    until: float | None = Field(None, gt=0)  # pause exactly there (a lesson step's pause point)


class Pause(_In):
    do: Literal["pause"]


class Step(_In):
    do: Literal["step"]
    count: int = Field(1, ge=1, le=1000)


class Speed(_In):
    do: Literal["speed"]
    value: float = Field(gt=0)


class Seek(_In):
    do: Literal["seek"]
    t: float = Field(ge=0)


class Reset(_In):
    do: Literal["reset"]


class NewSeed(_In):
    do: Literal["new_seed"]
    seed: int | None = Field(None, ge=0, le=2**63 - 1)


class Lesson(_In):
    do: Literal["lesson"]
    name: str = Field(min_length=1, max_length=100)


class Configure(_In):
    """Restart the world with a different shape: node count, mutations, the protocol's own
    switches (`options`: {name: bool}, names and values checked by the protocol's adapter),
    background clients."""

    do: Literal["configure"]
    nodes: int | None = Field(None, ge=1, le=51)
    mutations: list[str] | None = Field(None, max_length=20)
    options: dict[str, Any] | None = Field(None, max_length=20)
    workload: bool | None = None


class Compare(_In):
    """Compare mode: the same scenario under each named variant (`hello.compare_variants`), side
    by side in lock step; 2 to 4 names (checked by the session, naming `control.variants`), or
    none to go back to one world."""

    do: Literal["compare"]
    variants: list[str] = Field(max_length=16)


class Load(_In):
    """Load a share payload (a shared link, or an imported trace turned into one)."""

    do: Literal["load"]
    share: str = Field(min_length=1)


class Share(_In):
    do: Literal["share"]


class Resync(_In):
    do: Literal["snapshot"]


class Check(_In):
    do: Literal["check"]


Control = Annotated[Union[Play, Pause, Step, Speed, Seek, Reset, NewSeed, Lesson, Configure, Load,
                          Share, Resync, Check, Compare], Field(discriminator="do")]
CONTROLS = ("play", "pause", "step", "speed", "seek", "reset", "new_seed", "lesson", "configure",
            "load", "share", "snapshot", "check", "compare")
_CONTROL = TypeAdapter(Control)


def _fmt(e: ValidationError, prefix: str) -> str:
    err = e.errors()[0]
    loc = ".".join(str(p)[:40] for p in err["loc"] if p not in CONTROLS)
    msg = err["msg"].removeprefix("Value error, ")
    if err["type"] == "extra_forbidden":
        msg = "unknown field"
    return f"{prefix}.{loc}: {msg}" if loc else f"{prefix}: {msg}"


def frame_bytes(text: str | bytes, max_bytes: int) -> int:
    """The frame's size in bytes as it came over the wire (UTF-8), counted only as far as it
    matters: a text of n characters is n to 4n bytes."""
    if isinstance(text, (bytes, bytearray)):
        return len(text)
    n = len(text)
    if n > max_bytes or 4 * n <= max_bytes:
        return n
    return len(text.encode("utf-8", "surrogatepass"))


MAX_PENDING = 256  # clicks a reattach may carry (app/rooms.py; the page sends none beyond it)


class AttachIn(_In):
    """The first frame of a connection opened with `?attach=1`: which session, and its secret."""

    type: Literal["attach"]
    session: str = Field(min_length=1, max_length=64)
    secret: str = Field(min_length=1, max_length=128)
    # The moment the page last showed (optional): a session rebuilt from its recipe on another
    # worker (app/rooms.py) goes to it.
    t: float | None = Field(None, ge=0)
    # The clicks the page saw that no frame's `dur` has covered yet (each as the `events` frame's
    # `acts` gave it), oldest first: a rebuild applies them on top of the recipe.
    pending: list[dict[str, Any]] | None = Field(None, max_length=MAX_PENDING)
    # The `seq` of the last frame the page got: a recipe holding later frames is newer than the
    # page, and its pending clicks and moment then give way to it.
    seen: int | None = Field(None, ge=0)

    @field_validator("pending")
    @classmethod
    def _ats(cls, v):
        for a in v or ():
            at = a.get("at")
            if isinstance(at, bool) or not isinstance(at, (int, float)) or not 0 <= at < float("inf"):
                raise ValueError("each pending click needs its time \"at\" (a number of ms, 0 or more)")
        return v


def parse_attach(text: str | bytes, max_bytes: int) -> AttachIn:
    size = frame_bytes(text, max_bytes)
    if size > max_bytes:
        raise BadInput(f"attach: frame too large: {size} bytes or more (the limit is {max_bytes} "
                       f"bytes: a session id, its secret, a moment and at most {MAX_PENDING} pending clicks)")
    try:
        data = orjson.loads(text)
    except orjson.JSONDecodeError as e:
        raise BadInput(f"attach: malformed JSON: {e}") from None
    if not isinstance(data, dict) or data.get("type") != "attach":
        raise BadInput('attach: the first frame must be {"type": "attach", "session": ..., '
                       '"secret": ...}')
    try:
        return AttachIn.model_validate(data)
    except ValidationError as e:
        raise BadInput(_fmt(e, "attach")) from None


def parse_inbound(text: str | bytes, max_bytes: int) -> ActionIn | Any:
    """Validate one inbound frame; raise BadInput naming what was wrong (quoting at most a short
    prefix of it)."""
    size = frame_bytes(text, max_bytes)
    if size > max_bytes:
        raise BadInput(f"frame too large: {size} bytes or more (the limit is {max_bytes} bytes)")
    try:
        data = orjson.loads(text)
    except orjson.JSONDecodeError as e:
        raise BadInput(f"malformed JSON: {e}") from None
    if not isinstance(data, dict):
        raise BadInput("a frame must be a JSON object with a \"type\"")
    kind = data.get("type")
    if kind == "action":
        try:
            return ActionIn.model_validate(data)
        except ValidationError as e:
            raise BadInput(_fmt(e, "action")) from None
    if kind == "control":
        body = {k: v for k, v in data.items() if k != "type"}
        if "do" not in body:
            raise BadInput(f"control.do: missing (one of {', '.join(CONTROLS)})")
        if not isinstance(body["do"], str) or body["do"] not in CONTROLS:
            raise BadInput(f"control.do: unknown control {quote(body['do'])} (one of {', '.join(CONTROLS)})")
        try:
            return _CONTROL.validate_python(body)
        except ValidationError as e:
            raise BadInput(_fmt(e, "control")) from None
    if kind is None:
        raise BadInput("type: missing (\"action\" or \"control\")")
    if kind == "attach":
        raise BadInput("type: \"attach\" is only the first frame of a connection opened with "
                       "/ws?attach=1")
    raise BadInput(f"type: unknown frame type {quote(kind)} (\"action\" or \"control\")")
