"""Caps on what a browser session may run, applied to every way a scenario enters a session.

The engine accepts any scenario a file may describe (100 clients at 10 000 ops/s); a public server
does not. `check_scenario` refuses, with the field and the limit in the message, whatever would
make one session cost much more than a live cluster: big workloads, a nemesis firing every
millisecond, hair-trigger timers, thousands of scripted actions. `check_replay` bounds how much a
share link, a seek or an import may replay. The limits live in `Settings` (PLAYGROUND_* variables).

Scenario *duration* is not capped: sessions run open-ended and stop at the scenario's end.
"""

from __future__ import annotations

from typing import Any

from engine.scenario import Scenario, ScenarioError

from .settings import Settings


def check_actions_count(n: int, settings: Settings, where: str = "scenario.actions") -> None:
    """Refuse before parsing: validating 100 000 actions is itself a second of CPU."""
    if n > settings.max_actions:
        raise ScenarioError(f"{where}: at most {settings.max_actions} actions per session "
                            f"(this one has {n})")


def check_raw_scenario(data: Any, settings: Settings, where: str = "scenario") -> None:
    """Cheap checks on a decoded-but-unparsed scenario dict (before pydantic sees it)."""
    from .share import raw_action_count

    if isinstance(data, dict):
        check_actions_count(raw_action_count(data), settings, f"{where}.actions")


def check_scenario(sc: Scenario, settings: Settings) -> None:
    """Raise ScenarioError naming the first field over a browser-session limit."""
    from .protocols import get_adapter  # (here: the adapters import the wire, which imports us)

    s = settings
    n = len(sc.layout.ids)
    cap = get_adapter(sc.protocol).node_cap(s)
    if n > cap:
        field = "nodes" if sc.topology is None else "topology"
        raise ScenarioError(f"scenario.{field}: at most {cap} nodes per session "
                            f"(asked for {n})")
    check_actions_count(len(sc.actions), s)
    wl = sc.workload
    if wl is not None:
        clients, rate, keys = workload_size(wl)
        if clients > s.max_workload_clients:
            raise ScenarioError(f"scenario.workload.clients: at most {s.max_workload_clients} "
                                f"clients in the browser (asked for {clients})")
        if rate > s.max_workload_rate_per_s:
            raise ScenarioError(f"scenario.workload.rate_per_s: at most "
                                f"{s.max_workload_rate_per_s:g} operations per second in the "
                                f"browser (asked for {rate:g})")
        if keys > s.max_workload_keys:
            raise ScenarioError(f"scenario.workload.keys: at most {s.max_workload_keys} keys in the "
                                f"browser (asked for {keys})")
    if sc.nemesis is not None and sc.nemesis.interval_ms < s.min_nemesis_interval_ms:
        raise ScenarioError(f"scenario.nemesis.interval_ms: at least {s.min_nemesis_interval_ms:g} "
                            f"ms between faults in the browser (asked for {sc.nemesis.interval_ms:g})")
    # The protocol's timers, as its adapter names them: a hair-trigger timer is work per ms.
    adapter = get_adapter(sc.protocol)
    for name, v in adapter.timers(sc.config).items():
        if v < s.min_timer_ms:
            raise ScenarioError(f"scenario.config.{name}: at least {s.min_timer_ms:g} ms in the "
                                f"browser (asked for {v:g})")
    # Its sliding windows: what one holds is state (and work at each use) that grows with it.
    for name, v in adapter.windows(sc.config).items():
        if v > s.max_window_ms:
            raise ScenarioError(f"scenario.config.{name}: at most {s.max_window_ms:.10g} ms in the "
                                f"browser (asked for {v:.10g})")


def workload_size(wl) -> tuple[int, float, int]:
    """(clients, operations per second, keys) of any workload kind (a field it lacks counts 0;
    an open-loop arrival process has no clients, so it counts as one)."""
    rate = getattr(wl, "rate_per_s", 0) or 0
    clients = getattr(wl, "clients", 1 if rate else 0)
    return clients, rate, getattr(wl, "keys", 0) or 0


def replay_ops_bound(sc: Scenario, settings: Settings, worlds: int = 1) -> tuple[float, float] | None:
    """(rate per s, the simulated ms at which `worlds` of the scenario's world would have gone
    through `max_replay_ops` client operations), or None when there is no such bound: no
    workload, or a protocol whose state does not grow with its operations (its spec's
    `ops_grow_state`; such a replay is bounded by its events alone, `max_replay_events`)."""
    from engine.protocols import get_protocol

    wl = sc.workload
    clients, rate, _keys = workload_size(wl) if wl is not None else (0, 0, 0)
    if clients <= 0 or rate <= 0 or not get_protocol(sc.protocol).ops_grow_state:
        return None
    return rate, settings.max_replay_ops / (rate * worlds) * 1000


def check_replay(sc: Scenario, t_ms: float, settings: Settings, where: str = "t",
                 worlds: int = 1) -> None:
    """A replay to `t_ms` is bounded in simulated time and, for a protocol whose state grows with
    its client operations (and so every snapshot and digest), in those operations; `worlds` of
    them (compare mode) share the operations' bound. (Its events are bounded as it runs: see
    app/session/replay.py.)"""
    s = settings
    if t_ms > s.max_replay_ms:
        raise ScenarioError(f"{where}: at most {s.max_replay_ms:g} ms can be replayed "
                            f"(asked for {t_ms:g})")
    bound = replay_ops_bound(sc, s, worlds)
    if bound is not None:
        rate, limit_ms = bound
        if rate * t_ms / 1000 * worlds > s.max_replay_ops:
            each = f" in all, over {worlds} worlds" if worlds > 1 else ""
            raise ScenarioError(f"{where}: with workload.rate_per_s = {rate:g} at most "
                                f"{limit_ms:g} ms can be replayed ({s.max_replay_ops} client "
                                f"operations{each}; asked for {t_ms:g} ms)")




def quote(v: Any, n: int = 40) -> str:
    """`repr(v)`, cut to about `n` characters: an error names what was wrong without echoing it."""
    r = repr(v) if not isinstance(v, str) or len(v) <= 4 * n else repr(v[: 4 * n])
    return r if len(r) <= n else r[: n - 1] + "\u2026"


def decode_share(payload: str, settings: Settings):
    """`share.decode` with this server's limits: (scenario, t_ms, lesson)."""
    return decode_share_link(payload, settings)[:3]


def decode_share_link(payload: str, settings: Settings):
    """`share.decode_link` with this server's limits: (scenario, t_ms, lesson, variants)."""
    from . import share
    from .protocols import get_adapter

    sc, t, lesson, variants = share.decode_link(payload, settings.max_share_chars,
                                                settings.max_share_decoded_bytes,
                                                settings.max_actions)
    if variants:
        # Only the variants the protocol offers: a link cannot put arbitrary configurations side
        # by side (one cheap world beside a costly one would let the costly one run unbounded
        # while following the cheap one's moment).
        offered = get_adapter(sc.protocol).compare_variants(sc.config)
        for i, (name, over) in enumerate(variants):
            if offered.get(name) != over:
                raise ScenarioError(f"share.c[{i}]: {quote(name)} is not a variant "
                                    f"{sc.protocol} offers with these settings (offered: "
                                    f"{', '.join(offered) or 'none'})")
    return sc, t, lesson, variants


__all__ = ["quote", "check_scenario", "check_replay", "replay_ops_bound", "check_raw_scenario", "check_actions_count", "decode_share",
           "decode_share_link"]
