"""Share links: a run up to a moment, as a compact URL-safe string (no server-side storage).

A payload is `1.` followed by base64url(zlib(JSON)) of `{"s": scenario, "t": ms, "l": lesson}`,
where the scenario carries the seed, the config and every action (the scenario's own and the
user's clicks, each with its `at`). Fields equal to their defaults are left out; the lesson's notes
are left out too (the link names the lesson instead). Opening it replays the scenario to `t`, which
reproduces the exact state: seed + scenario + actions determine the run.
"""

from __future__ import annotations

import base64
import zlib

import orjson

from engine.scenario import Scenario, ScenarioError, parse_scenario

VERSION = "1"


def encode(scenario: Scenario, t_ms: float, lesson: str | None = None) -> str:
    data = scenario.model_dump(mode="json", by_alias=True, exclude_none=True, exclude_defaults=True,
                               exclude={"notes", "suggest"})
    if scenario.actions:  # exclude_defaults drops nothing inside actions, but keep them explicit
        data["actions"] = [a for a in scenario.to_dict()["actions"]]
    body = {"s": data, "t": t_ms}
    if lesson:
        body["l"] = lesson
    raw = zlib.compress(orjson.dumps(body), 9)
    return VERSION + "." + base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def decode(payload: str, max_chars: int = 1 << 20, max_decoded_bytes: int = 4 << 20,
           max_actions: int | None = None) -> tuple[Scenario, float, str | None]:
    """(scenario, t_ms, lesson name). Raises ScenarioError naming what was wrong.

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
    scenario = parse_scenario(data["s"])
    return scenario, float(t), lesson if isinstance(lesson, str) else None


__all__ = ["encode", "decode"]
