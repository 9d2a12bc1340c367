"""Strict models and error messages that name the field.

Every input the engine accepts (a scenario, an action, a protocol's config, a workload) is a
pydantic model built on `Strict`: unknown fields are refused, values are frozen, infinities and NaN
are refused. A rejected input raises `ScenarioError`, whose message names the field as a path
(`actions[2].node: ...`, `config.heartbeat_ms: ...`), formatted here once for all of them.
"""

from __future__ import annotations

from typing import Iterable

from pydantic import BaseModel, ConfigDict, ValidationError


class ScenarioError(ValueError):
    """A scenario or action was rejected; the message names the field that was wrong."""


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True, frozen=True, allow_inf_nan=False)


def format_error(e: ValidationError, prefix: str = "", skip: Iterable[str] = ()) -> str:
    """The first three errors as `path: message`. `skip` names location parts that are not fields
    (the tags and class names of a discriminated union)."""
    skip = set(skip) | {"function-after", "function-before"}
    parts = []
    for err in e.errors()[:3]:
        loc = prefix
        for p in err["loc"]:
            if isinstance(p, int):
                loc += f"[{p}]"
            elif p not in skip:
                loc += ("." if loc else "") + str(p)
        msg = err["msg"].removeprefix("Value error, ")
        if err["type"] == "extra_forbidden":
            msg = "unknown field"
        elif err["type"] == "union_tag_invalid" and isinstance(err.get("input"), dict):
            msg = f"unknown action {err['input'].get('do')!r}"
        parts.append(f"{loc}: {msg}" if loc else msg)
    return "; ".join(parts)


def validate(model: type[BaseModel], data, where: str) -> BaseModel:
    """`model.model_validate(data)`, or ScenarioError naming the field under `where`."""
    try:
        return model.model_validate(data)
    except ValidationError as e:
        raise ScenarioError(format_error(e, where)) from None


def known_mutations(names, known) -> tuple[str, ...]:
    """A config's `mutations`: each one of `known` (else ValueError listing them), sorted, once."""
    for m in names:
        if m not in known:
            raise ValueError(f"unknown mutation {m!r} (known: {', '.join(sorted(known))})")
    return tuple(sorted(set(names)))
