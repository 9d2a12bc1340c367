"""How the browser sees the load-balancing lab: requests as small dots (their pills carry the
request's id so the page can colour each by its age), backends and balancers as compact
summaries, the balancer's changes of mind in words, the page's switches, and the metrics
observer's series (engine/protocols/lb/metrics.py) as chartable columns.

Pill labels name the request a message belongs to (`o1#5` ClientRequest, `o1#5·t12` Work with its
try id, `t12 ok` Done, `#5 ok` ClientReply to the pill's destination client, `probe 3`); classes
are `req`, `work`, `done`, `reply`, `fail` (a failed Done or reply) and `probe`.

Series (`series` in frames, docs/ws-protocol.md): each `metric` record becomes one column entry:
`t`, `p50`, `p95`, `p99`, `p999` (ms, null with no samples), `tput` and `arr` (per s), `drops`,
`rej`, `tout`, `retries`, `samples`, per backend `util`, `inflight`, `queue` ({backend: [...]}),
and the last record's histogram (`hist`: {edges_ms, counts}). A snapshot carries the latest
`SERIES_FULL` records, the history the world keeps (metrics.HISTORY: the charts are a sliding
window of that many intervals; `full: true`: replace); an events frame the new records, at most
`SERIES_STEP` of them (append; the page drops what falls out of the window, `hello.extras.history`).
"""

from __future__ import annotations

import ast
import re
from pathlib import Path
from typing import Any

import engine.protocols.lb as lb_package
from engine.protocols.lb.algorithms import ALGORITHM_CLASSES
from engine.protocols.lb.config import ALGORITHMS
from engine.protocols.lb.metrics import HISTORY

from ..wire import BadInput
from .base import Adapter

SERIES_FULL = HISTORY  # points a snapshot carries: every record the world keeps
SERIES_STEP = 20  # metric records an events frame carries, at most

ALGORITHM_TITLES = {
    "round_robin": "Round robin", "weighted_round_robin": "Smooth weighted round robin",
    "random": "Random", "weighted_random": "Weighted random",
    "least_connections": "Least connections", "weighted_least_connections": "Weighted least connections",
    "power_of_d": "Power of two choices", "consistent_hash": "Consistent hashing",
    "maglev": "Maglev hashing", "peak_ewma": "Peak-EWMA (least response time)",
}


def _first_sentence(doc: str | None) -> str:
    text = re.sub(r"\s+", " ", doc or "").strip()
    m = re.search(r"(?<=[a-z)\]])\. ", text)
    return text[: m.start() + 1] if m else text


def _class_docs() -> dict[str, str]:
    """The algorithm classes' docstrings, read from algorithms.py: compiled with mypyc
    (engine/native.py), a class keeps no `__doc__`."""
    source = Path(lb_package.__file__).with_name("algorithms.py").read_text()
    return {n.name: ast.get_docstring(n) or "" for n in ast.parse(source).body
            if isinstance(n, ast.ClassDef)}


_DOCS = _class_docs()
ALGORITHM_WORDS = {name: _first_sentence(_DOCS[ALGORITHM_CLASSES[name].__name__])
                   for name in ALGORITHMS}


def thin(recs: list, cap: int) -> list:
    """At most `cap` of `recs`, evenly spaced, always keeping the last."""
    n = len(recs)
    if n <= cap:
        return recs
    step = n / cap
    picked = [recs[int(i * step)] for i in range(cap - 1)]
    return picked + [recs[-1]]


class LbAdapter(Adapter):
    protocol = "lb"
    title = "Load balancing"
    max_nodes = 22  # one or two balancers and up to 20 backends: each a queue, cheap to simulate
    default_speed = 0.1  # requests are milliseconds long: 10x slower than real time shows them move
    switches = ()  # every option has its control in the page module's panel (lb.js)
    background_clients = False  # its clients are the open-loop arrivals, not key-value clients
    options = {
        "algorithm": "The balancing algorithm (one of the engine's ten; restarts the run: to switch "
                     "mid-run, pick it in the panel, which sends an `algorithm` action).",
        "health": "Active health checks: the balancer probes every backend each second and stops "
                  "sending to one that fails three probes in a row.",
        "outlier": "Passive outlier ejection: five failed tries in a row eject a backend for 5 s.",
        "retries": "Retries to another backend (0-3), within a retry budget (20% of requests).",
        "retry_budget": "The retry budget: without it, every failure may be retried (a storm).",
        "slow_fleet": "The speed of the second half of the fleet (0.1-1): a heterogeneous fleet.",
        "rate_per_s": "Arrivals per second, all clients together (1-200).",
        "cost_spread": "Variance of the request cost: 0 constant, then lognormal with this sigma (up to 3).",
    }
    intro = {
        "title": "A live load-balancing lab",
        "paragraphs": (
            "Clients on the left send requests (dots) to the balancer in the middle, which picks a "
            "backend on the right for each with its algorithm. A dot is green when its request is "
            "young and turns red as it ages toward its timeout. Each backend shows its requests in "
            "service / its concurrency, a queue bar, and a ring that fills with its utilisation.",
            "The panel charts latency percentiles (p50 to p99.9), each backend's utilisation, drops "
            "and a latency histogram, live. Switch the algorithm there (recorded in the timeline, so "
            "a share link reproduces it), change the rate, the cost variance or the fleet, and click "
            "a backend to crash, pause, slow or restart it.",
        ),
        "suggest": "click a backend and slow it to \u00d70.1: round robin keeps sending it its share and "
                   "p99 climbs; then pick least connections or peak-EWMA in the panel.",
    }
    shortcuts = (("A", "next balancing algorithm (an action, from now on)"),
                 ("X", "crash the busiest backend (restart it with a click)"))

    # --- hello and config ------------------------------------------------------------------------
    def hello(self, scenario) -> dict:
        cfg = scenario.config
        topo = scenario.layout
        backends = topo.of_kind("backend")
        wl = scenario.workload
        cost = getattr(wl, "cost", None)
        return {
            "balancers": topo.of_kind("balancer"), "backends": backends,
            "algorithm": cfg.algorithm, "algorithms": [[a, ALGORITHM_TITLES[a], ALGORITHM_WORDS[a]]
                                                       for a in ALGORITHMS],
            "base_speed": {b: cfg.spec_of(i).speed for i, b in enumerate(backends)},
            "concurrency": {b: cfg.spec_of(i).concurrency for i, b in enumerate(backends)},
            "health": cfg.health.enabled, "outlier": cfg.outlier.enabled,
            "retries": cfg.retries.max_retries, "retry_budget": cfg.retries.budget,
            "metrics_interval_ms": cfg.metrics.interval_ms, "window_ms": cfg.metrics.window_ms,
            "history": SERIES_FULL,
            "timeout_ms": getattr(wl, "timeout_ms", 1000),
            "rate_per_s": getattr(wl, "rate_per_s", 0),
            "cost": ({"dist": cost.dist, "mean_ms": cost.mean_ms, "spread": cost.spread}
                     if cost is not None else None),
        }

    def default_scenario(self, settings, seed: int) -> dict:
        """Three clients at 150 requests/s in all, one balancer, five equal backends at about 30%
        utilisation (round robin): a fleet that looks fine, until you break it."""
        return {
            "protocol": "lb", "seed": seed, "duration_ms": settings.live_duration_ms,
            "title": "A live load-balancing lab", "nodes": 5,  # backends, behind one balancer
            "config": {"algorithm": "round_robin", "backend": {"concurrency": 2, "queue": 16},
                       "metrics": {"interval_ms": 250, "window_ms": 2000}},
            "workload": {"kind": "open_loop", "clients": 3, "rate_per_s": 150,
                         "cost": {"dist": "lognormal", "mean_ms": 20, "spread": 0.5},
                         "timeout_ms": 1000},
        }

    def timers(self, config) -> dict[str, float]:
        """The periods that cost work per ms: the metrics interval, health probes, the try
        timeout, and a stale-load refresh when there is one (0 means fresh loads)."""
        out = {"metrics.interval_ms": config.metrics.interval_ms,
               "try_timeout_ms": config.try_timeout_ms}
        if config.health.enabled:
            out["health.interval_ms"] = config.health.interval_ms
            out["health.timeout_ms"] = config.health.timeout_ms
        if config.load_refresh_ms:
            out["load_refresh_ms"] = config.load_refresh_ms
        return out

    def windows(self, config) -> dict[str, float]:
        """The metrics observer's latency window: every request served in it is a sample held in
        the state and sorted at each interval."""
        return {"metrics.window_ms": config.metrics.window_ms}

    def configure(self, config: dict, options: dict[str, Any]) -> dict:
        """The switches that are the config's (the others are `reshape`'s)."""
        out = dict(config)
        for name, value in options.items():
            if name not in self.options:
                raise BadInput(f"control.options.{str(name)[:40]}: unknown option for lb (known: "
                               f"{', '.join(sorted(self.options))})")
            if name == "algorithm":
                if value not in ALGORITHMS:
                    raise BadInput(f"control.options.algorithm: one of {', '.join(ALGORITHMS)}")
                out["algorithm"] = value
            elif name in ("health", "outlier", "retry_budget"):
                if not isinstance(value, bool):
                    raise BadInput(f"control.options.{name}: must be true or false")
                key, field = {"health": ("health", "enabled"), "outlier": ("outlier", "enabled"),
                              "retry_budget": ("retries", "budget")}[name]
                out[key] = {**(out.get(key) or {}), field: value}
            elif name == "retries":
                out["retries"] = {**(out.get("retries") or {}),
                                  "max_retries": _number(name, value, 0, 3, integer=True)}
        return out

    def compare_variants(self, config) -> dict[str, dict[str, Any]]:
        """One variant per balancing algorithm: the same seeded workload and fleet under each
        (compare mode, issue 9: why least connections or peak-EWMA beat round robin on a
        heterogeneous fleet). The switches are not variants: they rebuild the fleet."""
        return {a: {"algorithm": a} for a in ALGORITHMS}

    def reshape(self, data: dict, options: dict[str, Any]) -> dict:
        """Besides the config's switches: the workload's (`rate_per_s`, `cost_spread`) and the
        fleet's speeds (`slow_fleet`: the second half of the backends at that speed)."""
        data = {**data, "config": self.configure(data["config"], options)}
        if "slow_fleet" in options:
            slow = _number("slow_fleet", options["slow_fleet"], 0.1, 1)
            n = _backend_count(data)
            data["config"]["backends"] = [{"speed": 1.0 if i < (n + 1) // 2 else slow}
                                          for i in range(n)]
        elif len(data["config"].get("backends") or ()) > _backend_count(data):
            data["config"]["backends"] = list(data["config"]["backends"])[:_backend_count(data)]
        if "rate_per_s" in options or "cost_spread" in options:
            wl = dict(data.get("workload") or {"kind": "open_loop"})
            if "rate_per_s" in options:
                wl["rate_per_s"] = _number("rate_per_s", options["rate_per_s"], 1, 200)
            if "cost_spread" in options:
                sp = _number("cost_spread", options["cost_spread"], 0, 3)
                cost = dict(wl.get("cost") or {})
                cost.update({"dist": "lognormal", "spread": sp} if sp > 0 else {"dist": "constant"})
                wl["cost"] = cost
            data["workload"] = wl
        return data

    # --- the wire --------------------------------------------------------------------------------
    @staticmethod
    def msg_label(msg: dict) -> tuple[str, str]:
        k = msg.get("kind")
        if k == "ClientRequest":
            key = f" {msg['key']}" if msg.get("key") is not None else ""
            return f"{msg.get('client')}#{msg.get('req')}{key}", "req"
        if k == "Work":
            return f"{msg.get('client')}#{msg.get('req')}\u00b7t{msg.get('tid')}", "work"
        if k == "Done":
            return (f"t{msg.get('tid')} ok", "done") if msg.get("ok") else (f"t{msg.get('tid')} rejected", "fail")
        if k == "ClientReply":
            if msg.get("ok"):
                return f"#{msg.get('req')} ok", "reply"
            return f"#{msg.get('req')} {msg.get('why') or 'failed'}", "fail"
        if k == "Probe":
            return f"probe {msg.get('seq')}", "probe"
        if k == "ProbeReply":
            return f"probe {msg.get('seq')} {'ok' if msg.get('ok') else 'overloaded'}", "probe"
        return str(k), "other"

    def node(self, v: dict, full: bool, log_window: int) -> dict:
        down = v["status"] == "down"
        role = v.get("role")
        if role == "balancer" or "algorithm" in v:
            return {"kind": "balancer", "role": "down" if down else "balancer",
                    "algorithm": v.get("algorithm"), "healthy": v.get("healthy", []),
                    "ejected": v.get("ejected", []), "in_flight": v.get("in_flight", {}),
                    "tries": v.get("tries", 0), "retrying": v.get("retrying", 0)}
        if role == "backend" or "queue_limit" in v:
            return {"kind": "backend", "role": "down" if down else "backend",
                    **{f: v.get(f) for f in ("in_flight", "queue", "concurrency", "queue_limit",
                                             "speed", "served", "rejected")}}
        return {"kind": v.get("kind", "?"), "role": "down" if down else role}

    # --- series ----------------------------------------------------------------------------------
    def series(self, recs: list[dict], full: bool) -> dict | None:
        recs = [r for r in recs if r.get("type") == "metric"]
        if not recs and not full:
            return None
        recs = recs[-SERIES_FULL:] if full else thin(recs, SERIES_STEP)
        cols: dict[str, Any] = {"full": full, "t": [r["t"] for r in recs]}
        for name, q in (("p50", "p50"), ("p95", "p95"), ("p99", "p99"), ("p999", "p99.9")):
            cols[name] = [r["latency_ms"][q] for r in recs]
        for name, f in (("tput", "throughput_per_s"), ("arr", "arrivals_per_s"), ("drops", "drops"),
                        ("rej", "rejected"), ("tout", "timed_out"), ("retries", "retries"),
                        ("samples", "samples")):
            cols[name] = [r[f] for r in recs]
        backends = sorted(recs[-1]["backends"], key=lambda b: int(b[1:])) if recs else []
        for name, f in (("util", "utilisation"), ("inflight", "in_flight"), ("queue", "queue")):
            cols[name] = {b: [r["backends"].get(b, {}).get(f) for r in recs] for b in backends}
        cols["hist"] = recs[-1]["histogram"] if recs else None
        return cols

    # --- words -----------------------------------------------------------------------------------
    def told(self, v: dict) -> Any:
        if v.get("status") == "down":
            return ("down",)
        if "algorithm" in v:
            return ("balancer", v.get("algorithm"), tuple(v.get("healthy", ())), tuple(v.get("ejected", ())))
        return ("backend", None)  # (whether its queue has room: learnt from its next record)

    def describe(self, rec: dict, told: dict) -> str | None:
        t = rec["type"]
        if t == "state":
            n = rec["node"]
            prev = told.get(n) or ()
            if "algorithm" in rec:
                now = ("down",) if rec["role"] == "down" else (
                    "balancer", rec["algorithm"], tuple(rec["healthy"]), tuple(rec["ejected"]))
                told[n] = now
                if now[0] == "down":
                    return None
                if not prev or prev[0] != "balancer":
                    return (f"{n} restarted with {ALGORITHM_TITLES[rec['algorithm']].lower()}"
                            if prev and prev[0] == "down" else None)
                parts = []
                if now[1] != prev[1]:
                    parts.append(f"balances with {ALGORITHM_TITLES[now[1]].lower()} from now on")
                gone = [b for b in prev[2] if b not in now[2] and b not in now[3]]
                back = [b for b in now[2] if b not in prev[2]]
                ej = [b for b in now[3] if b not in prev[3]]
                if ej:
                    parts.append(f"ejected {', '.join(ej)} after consecutive failed tries")
                if gone:
                    parts.append(f"marked {', '.join(gone)} unhealthy (failed health checks)")
                if back:
                    parts.append(f"sends to {', '.join(back)} again")
                return f"{n} " + "; ".join(parts) if parts else None
            up = rec["role"] != "down"
            now = ("backend", rec.get("healthy")) if up else ("down",)
            told[n] = now
            if not up:
                return None
            if prev and prev[0] == "down":
                return f"{n} restarted: empty, at its configured speed"
            if prev and prev[0] == "backend" and prev[1] is not None and prev[1] != rec.get("healthy"):
                return (f"{n}'s queue is full: it rejects new requests" if not rec.get("healthy")
                        else f"{n} has room again")
            return None
        if t == "request":
            ev = rec["event"]
            who = f"{rec['client']}#{rec['id']}"
            if ev == "retry":
                why = "its queue was full" if rec.get("why") == "reject" else "it did not answer in time"
                return f"{rec.get('lb')} retries {who}: {rec.get('backend')} failed ({why})"
            if ev == "reject":
                return f"{who} failed: " + (f"rejected by {rec['backend']}" if rec.get("backend")
                                            else "no backend could take it")
            if ev == "timeout":
                return f"{who} timed out" + (f" (last tried {rec['backend']})" if rec.get("backend") else "")
            return None
        return super().describe(rec, told)

    def fault_words(self, rec: dict) -> str:
        do = rec.get("do")
        if do == "slow":
            f = rec.get("factor", 1)
            return (f"restored {rec['node']}'s configured speed" if f == 1
                    else f"slowed {rec['node']} to \u00d7{f:g} of its configured speed")
        if do == "algorithm":
            return f"switched {rec['node']} to {ALGORITHM_TITLES.get(rec['algorithm'], rec['algorithm']).lower()}"
        return super().fault_words(rec)


def _number(name: str, value: Any, lo: float, hi: float, integer: bool = False):
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not lo <= value <= hi \
            or (integer and value != int(value)):
        kind = "a whole number" if integer else "a number"
        raise BadInput(f"control.options.{name}: {kind} from {lo:g} to {hi:g}")
    return int(value) if integer else float(value)


def _backend_count(data: dict) -> int:
    topo = data.get("topology")
    if isinstance(topo, dict) and "backends" in topo:
        return int(topo["backends"])
    return int(data.get("nodes") or 3)
