"""The adapter interface: everything the web app needs to know about one protocol.

The session, the frames, the routes and the page's generic code never read a protocol's fields;
they ask the scenario's adapter (`app/protocols/<name>.py`, registered in `ADAPTERS`). A new
protocol subclasses `Adapter`, overrides what its page needs, and adds one registry line:

    protocol        the registry name ("raft")
    title           how the page names it ("Raft")
    msg_label(msg)                      -> (label, class) of a message pill
    node(view, full, log_window)        -> the node's summary in frames (`full`: in a snapshot)
    deltas(rec)                         -> [(key, item), ...] a `state` record adds to the
                                           `events` frame's `deltas[key]` (per-protocol changes
                                           too big to resend whole each tick, such as a log)
    told(view)                          -> the state `describe` compares the next record with
    describe(rec, told)                 -> one sentence for a record, or None (updates `told`)
    hello(scenario)                     -> extra `hello` fields under `"extras"`
    options                             {name: sentence}: switches `configure` accepts
    configure(config, options)          -> the new config dict; BadInput naming
                                           `control.options.<name>` on a bad option
    reshape(data, options)              -> the scenario dict (`config`, `nodes`, `topology`,
                                           `workload`) after the page's switches; by default
                                           `configure` on its config (a protocol whose switches
                                           reach the workload or the fleet overrides it)
    series(records, full)               -> what frames carry under `series` of the records the
                                           world's writing observers wrote (checkers with
                                           `writes`, e.g. metrics), or None; `full` in a
                                           snapshot (the whole history: keep it bounded)
    max_nodes                           nodes a browser session may hold (None: the settings'
                                        `max_nodes`), for protocols whose nodes are cheap
    switches                            the options the Mutations tab lists as checkboxes (None:
                                        all; a protocol whose page module has its own controls
                                        for them lists fewer)
    background_clients                  whether the Mutations tab offers the generic key-value
                                        background clients (`configure` with `workload`)
    default_speed                       a fresh session's speed (None: the settings')
    timers(config)                      -> {config field: ms} the browser's minimum timer applies to
    windows(config)                     -> {config field: ms} the browser's maximum window applies
                                           to (sliding windows of samples kept in the state)
    compare_variants(config)            -> {name: {config field: value}}: the configurations compare
                                           mode can put side by side (default: each switch in
                                           `options` on and off)
    default_scenario(settings, seed)    -> the scenario dict of a fresh live session
    intro                               {"title", "paragraphs", "suggest"}: the lesson panel's text
                                        when no lesson is open
    shortcuts                           ((key, what), ...) the protocol's own keyboard shortcuts,
                                        for the help dialog

Checkers are told apart by flags on the checker, never by name: `search` (checked on demand
with `check(budget)`, verdict in `result`, e.g. linearizability) and `shown` (False for helpers
such as a mirror of the cluster's state, which the page does not list).
"""

from __future__ import annotations

from typing import Any

from engine.scenario import Scenario

from ..settings import Settings
from ..wire import BadInput


class Adapter:
    protocol = "?"
    title = "?"
    options: dict[str, str] = {}
    intro: dict[str, Any] = {"title": "", "paragraphs": (), "suggest": ""}
    shortcuts: tuple[tuple[str, str], ...] = ()
    max_nodes: int | None = None
    default_speed: float | None = None
    switches: tuple[str, ...] | None = None
    background_clients = True

    def node_cap(self, settings: Settings) -> int:
        return self.max_nodes if self.max_nodes is not None else settings.max_nodes

    def series(self, records: list[dict], full: bool) -> Any:
        return None

    # --- frames ----------------------------------------------------------------------------------
    def msg_label(self, msg: dict) -> tuple[str, str]:
        return str(msg.get("kind", "?")), "other"

    def node(self, v: dict, full: bool, log_window: int) -> dict:
        """The view as it is, less the kernel's own fields (status and timers are added by the
        frame builder for every protocol)."""
        return {k: x for k, x in v.items() if k not in ("status", "timers")}

    def deltas(self, rec: dict) -> list[tuple[str, Any]]:
        return []

    def told(self, v: dict) -> Any:
        return v.get("role")

    def describe(self, rec: dict, told: dict) -> str | None:
        if rec["type"] == "state":
            told[rec["node"]] = rec.get("role")
        elif rec["type"] == "fault":
            return self.fault_sentence(rec)
        return None

    def fault_sentence(self, rec: dict) -> str:
        who = "Nemesis" if rec.get("by") == "nemesis" else "You"
        return f"{who}: {self.fault_words(rec)}"

    def fault_words(self, rec: dict) -> str:
        """The generic faults (engine/faults.py) and message-level control (engine/manual.py) in
        words; an adapter adds its protocol's actions and falls back to this."""
        do = rec.get("do")
        if do in ("crash", "restart", "pause", "resume"):
            return {"crash": "crashed", "restart": "restarted", "pause": "paused",
                    "resume": "resumed"}[do] + f" {rec['node']}"
        if do == "partition":
            return "partitioned the cluster into " + " | ".join(
                "{" + ", ".join(g) + "}" for g in rec.get("groups", []))
        if do == "cut":
            arrow = "\u2194" if rec.get("both", True) else "\u2192"
            return f"cut the link {rec['from']} {arrow} {rec['to']}"
        if do == "heal":
            if rec.get("from") is None:
                return "healed every partition and cut"
            arrow = "\u2192" if rec.get("both") is False else "\u2194"
            return f"healed the link {rec['from']} {arrow} {rec['to']}"
        if do == "set_link":
            parts = []
            if rec.get("latency_ms") is not None:
                lo, hi = rec["latency_ms"]
                parts.append(f"latency {lo:g}-{hi:g} ms")
            if rec.get("loss") is not None:
                parts.append(f"loss {rec['loss'] * 100:g}%")
            if rec.get("duplicate") is not None:
                parts.append(f"duplication {rec['duplicate'] * 100:g}%")
            where = "every link" if rec.get("from") == "*" else f"{rec['from']}-{rec['to']}"
            return f"set {', '.join(parts) or 'nothing'} on {where}"
        if do == "manual":
            return ("switched manual delivery on: messages wait on their links" if rec.get("on")
                    else "switched manual delivery off: waiting messages are delivered")
        if do in ("deliver", "drop", "duplicate"):
            return {"deliver": "delivered", "drop": "dropped", "duplicate": "duplicated"}[do] + \
                f" message #{rec['id']}"
        if do == "fire":
            return f"fired {rec['node']}'s {rec['timer']} timer"
        return str(do)

    def hello(self, scenario: Scenario) -> dict:
        return {}

    # --- configuration ---------------------------------------------------------------------------
    def configure(self, config: dict, options: dict[str, Any]) -> dict:
        """Apply the page's switches to a config dict (each a boolean named in `options`)."""
        out = dict(config)
        for name, value in options.items():
            if name not in self.options:
                known = ", ".join(sorted(self.options)) or "none"
                raise BadInput(f"control.options.{str(name)[:40]}: unknown option for "
                               f"{self.protocol} (known: {known})")
            if not isinstance(value, bool):
                raise BadInput(f"control.options.{name}: must be true or false")
            out[name] = value
        return out

    def reshape(self, data: dict, options: dict[str, Any]) -> dict:
        return {**data, "config": self.configure(data["config"], options)}

    def compare_variants(self, config: Any) -> dict[str, dict[str, Any]]:
        """Named config overrides compare mode offers for a scenario with `config` (a name is
        what the URL's `?compare=a,b` and the `compare` control give). By default each switch of
        `options` on and off; a protocol adds its own (algorithms, timeouts, modes)."""
        out: dict[str, dict[str, Any]] = {}
        for name in self.options:
            out[f"{name}-on"] = {name: True}
            out[f"{name}-off"] = {name: False}
        return out

    def timers(self, config: Any) -> dict[str, float]:
        """Every config field in ms, except the upper ends of ranges (`..._ms_max`)."""
        data = config.model_dump() if hasattr(config, "model_dump") else dict(config)
        return {k: v for k, v in data.items()
                if ("_ms" in k and not k.endswith("_max") and isinstance(v, (int, float))
                    and not isinstance(v, bool))}

    def windows(self, config: Any) -> dict[str, float]:
        """None by default (a protocol whose observers keep sliding windows names them)."""
        return {}

    def default_scenario(self, settings: Settings, seed: int) -> dict:
        data: dict[str, Any] = {"protocol": self.protocol, "nodes": settings.default_nodes,
                                "seed": seed, "duration_ms": settings.live_duration_ms,
                                "title": f"A live {self.title} cluster"}
        wl = live_workload(settings)
        if wl:
            data["workload"] = wl
        return data


def live_workload(settings: Settings) -> dict | None:
    """The background key-value clients of a live session (None when the settings turn them off)."""
    if settings.workload_clients <= 0 or settings.workload_rate_per_s <= 0:
        return None
    return {"clients": settings.workload_clients, "rate_per_s": settings.workload_rate_per_s, "keys": 2}
