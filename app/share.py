"""Share links: a run up to a moment, as a compact URL-safe string (no server-side storage).

A payload is `1.` followed by base64url(zlib(JSON)) of `{"s": scenario, "t": ms, "l": lesson}`,
where the scenario carries the seed, the config and every action (the scenario's own and the
user's clicks, each with its `at`). Fields equal to their defaults are left out; the lesson's notes
are left out too (the link names the lesson instead). Opening it replays the scenario to `t`, which
reproduces the exact state: seed + scenario + actions determine the run.

A compare-mode link (app/session/compare.py) adds `"c": [[name, overrides], ...]`, 2 to 4 variants:
one world per variant, each the scenario with those config overrides. A reader that knows nothing
of compare mode opens the scenario alone.
"""

from __future__ import annotations

import base64
import zlib

import orjson

from engine.scenario import Scenario, ScenarioError, parse_scenario

VERSION = "1"


MIN_VARIANTS, MAX_VARIANTS = 2, 4


def encode(scenario: Scenario, t_ms: float, lesson: str | None = None,
           variants: list[tuple[str, dict]] | None = None) -> str:
    data = scenario.model_dump(mode="json", by_alias=True, exclude_none=True, exclude_defaults=True,
                               exclude={"notes", "suggest"})
    if scenario.actions:  # exclude_defaults drops nothing inside actions, but keep them explicit
        data["actions"] = [a for a in scenario.to_dict()["actions"]]
    body = {"s": data, "t": t_ms}
    if lesson:
        body["l"] = lesson
    if variants:
        body["c"] = [[name, dict(over)] for name, over in variants]
    raw = zlib.compress(orjson.dumps(body), 9)
    return VERSION + "." + base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def decode(payload: str, max_chars: int = 1 << 20, max_decoded_bytes: int = 4 << 20,
           max_actions: int | None = None) -> tuple[Scenario, float, str | None]:
    """(scenario, t_ms, lesson name). Raises ScenarioError naming what was wrong. (A compare
    link's variants are left out: see `decode_link`.)"""
    return decode_link(payload, max_chars, max_decoded_bytes, max_actions)[:3]


def decode_link(payload: str, max_chars: int = 1 << 20, max_decoded_bytes: int = 4 << 20,
                max_actions: int | None = None
                ) -> tuple[Scenario, float, str | None, list[tuple[str, dict]]]:
    """(scenario, t_ms, lesson name, compare variants: [] for one world). Raises ScenarioError
    naming what was wrong.

    A few kilobytes of zlib can unpack to megabytes of repeated actions, and validating those
    would hold the server for seconds: the unpacked size and the number of actions are checked
    before the scenario is parsed."""
    if len(payload) > max_chars:
        raise ScenarioError(f"share: payload too long ({len(payload)} characters, the limit is {max_chars})")
    version, _, body = payload.partition(".")
    if version != VERSION or not body:
        raise ScenarioError(f"share: not a playground link (expected a payload starting with '{VERSION}.')")
    try:
        raw = base64.urlsafe_b64decode(body + "=" * (-len(body) % 4))
        z = zlib.decompressobj()
        text = z.decompress(raw, max_decoded_bytes)
        if z.unconsumed_tail:
            raise ScenarioError(f"share: the payload unpacks to more than {max_decoded_bytes} bytes")
        data = orjson.loads(text)
    except (ValueError, zlib.error, orjson.JSONDecodeError) as e:
        if isinstance(e, ScenarioError):
            raise
        raise ScenarioError("share: the payload is damaged (was the link cut short?)") from None
    if not isinstance(data, dict) or not isinstance(data.get("s"), dict):
        raise ScenarioError("share: the payload has no scenario")
    actions = data["s"].get("actions")
    if max_actions is not None and isinstance(actions, list) and len(actions) > max_actions:
        raise ScenarioError(f"share.actions: at most {max_actions} actions per session "
                            f"(this link has {len(actions)})")
    t = data.get("t", 0)
    if not isinstance(t, (int, float)) or isinstance(t, bool) or t < 0:
        raise ScenarioError("share.t: must be a time in ms, at least 0")
    lesson = data.get("l")
    variants = _variants(data.get("c"))
    scenario = parse_scenario(data["s"])
    return scenario, float(t), lesson if isinstance(lesson, str) else None, variants


def _variants(raw) -> list[tuple[str, dict]]:
    """A link's `c`, checked for shape (each world's scenario checks the overrides)."""
    if raw is None:
        return []
    if (not isinstance(raw, list) or not MIN_VARIANTS <= len(raw) <= MAX_VARIANTS
            or not all(isinstance(v, list) and len(v) == 2 and isinstance(v[0], str)
                       and 0 < len(v[0]) <= 64 and isinstance(v[1], dict) for v in raw)
            or len({v[0] for v in raw}) != len(raw)):
        raise ScenarioError(f"share.c: compare {MIN_VARIANTS} to {MAX_VARIANTS} variants, each "
                            "[name, {config field: value}] with distinct names")
    return [(name, dict(over)) for name, over in raw]


__all__ = ["encode", "decode", "decode_link"]
