"""Compare mode's variants: the same scenario under 2-4 named configurations, side by side.

A variant is a name and config overrides (`{field: value}`), offered by the protocol's adapter
(`Adapter.compare_variants(config)`): algorithms, timeouts, modes, switches. The page asks by name (a `compare` control, or
`?compare=a,b` in the URL); a share link carries the names and their overrides, so it reproduces
its worlds even if the offer changes later. Every world is the origin scenario (seed, workload,
actions) with one variant's overrides on its config: nothing else differs between them.
"""

from __future__ import annotations

from typing import Any

from engine.scenario import Scenario, ScenarioError

from ..limits import quote
from ..wire import BadInput

MIN_WORLDS = 2
MAX_WORLDS = 4


def resolve_variants(adapter, config: Any, names: list[str], where: str) -> list[tuple[str, dict]]:
    """Names -> [(name, overrides)], checked against what `adapter` offers for `config`. An empty
    list is single-world mode. BadInput naming `where` on a bad count, an unknown or a repeated
    name."""
    if not names:
        return []
    offered = adapter.compare_variants(config)
    if not offered:
        raise BadInput(f"{where}: {adapter.protocol} offers no variants to compare")
    if not MIN_WORLDS <= len(names) <= MAX_WORLDS:
        raise BadInput(f"{where}: compare {MIN_WORLDS} to {MAX_WORLDS} variants (asked for "
                       f"{len(names)}; offered: {', '.join(offered)})")
    out = []
    for i, name in enumerate(names):
        if not isinstance(name, str) or name not in offered:
            raise BadInput(f"{where}[{i}]: unknown variant {quote(name)} for {adapter.protocol} "
                           f"(offered: {', '.join(offered)})")
        if any(name == n for n, _ in out):
            raise BadInput(f"{where}[{i}]: variant {quote(name)} is listed twice")
        out.append((name, dict(offered[name])))
    return out


def build_worlds(origin: Scenario, variants: list[tuple[str, dict]]) -> list[Scenario]:
    """The scenario of each world: the origin with each variant's overrides on its config (the
    origin alone when there are none). ScenarioError naming the variant and the field."""
    if not variants:
        return [origin]
    base = origin.config.model_dump(mode="json")
    out = []
    for name, over in variants:
        try:
            out.append(origin.with_(config={**base, **over}))
        except ScenarioError as e:
            raise ScenarioError(f"compare.{name}: {e}") from None
    return out
