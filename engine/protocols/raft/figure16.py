"""Raft's Figure 16 reproduced: `playground bench --figure16` (the 1000-trial runs behind it).

§9.3: "we repeatedly crashed the leader of a cluster of five servers and timed how long it took
to detect the crash and elect a new leader". Each trial runs the lesson scenario
(scenarios/figure16_top.json) with one line's election timeouts (the heartbeat, and the window the
leader is crashed in, half the minimum, as in the paper) and its seed, and reads the measure
`election_downtime_ms` (measures.py). A trial that elects nobody within the run (10 s after the
crash) counts as censored: it is over 10 s, and sorts last in the CDF.

Pure apart from the worker pool: each trial is a function of (base scenario, line, seed), so the
table is the same whatever runs it and however many workers share it.
"""

from __future__ import annotations

import copy
import multiprocessing
import statistics
from typing import Any

from ...scenario import parse_scenario
from ...sim import Simulation
from .measures import BroadcastTime, ElectionDowntime

TOP = ((150, 150), (150, 151), (150, 155), (150, 175), (150, 200), (150, 300))
BOTTOM = ((12, 24), (25, 50), (50, 100), (100, 200), (150, 300))
# The paper's published points (§9.3 and Figure 16's caption), and the issue's tolerance.
PAPER = {"150-155": {"median": 287.0}, "150-200": {"max": 513.0},
         "12-24": {"mean": 35.0, "max": 152.0}}
TOLERANCE = 0.3


def line_name(lo: float, hi: float) -> str:
    return f"{lo:g}-{hi:g}"


def line_scenario(base: dict, lo: float, hi: float, seed: int) -> dict:
    """The base scenario with one line's timeouts: heartbeat and crash window half the minimum
    ("the leader was crashed uniformly randomly within its heartbeat interval, which was half of
    the minimum election timeout for all tests")."""
    d = copy.deepcopy(base)
    hb = lo / 2
    d["seed"] = seed
    d["config"] = {**d.get("config", {}), "election_timeout_ms_min": lo,
                   "election_timeout_ms_max": hi, "heartbeat_ms": hb}
    for a in d.get("actions", ()):
        if a["do"] == "crash_target":
            a["within_ms"] = hb
    for k in ("title", "notes", "suggest"):
        d.pop(k, None)
    return d


def trial(args: tuple[dict, float, float, int]) -> float | None:
    """One trial's downtime (ms), or None if no leader was elected before the run ended."""
    base, lo, hi, seed = args
    sc = parse_scenario(line_scenario(base, lo, hi, seed))
    sim = Simulation(sc, checkers=False)
    m = ElectionDowntime(sim.topology, sc.config, sc)
    sim.subscribe(m, messages=False)
    end = sc.duration_ms
    while sim.now_ms < end and m.elected_t is None:  # nothing after the election counts
        sim.run_until(min(end, sim.now_ms + 100))
    return m.value()


def broadcast_scenario(base: dict, seed: int) -> dict:
    """The lesson's cluster (network, storage, config) staging one broadcast: n1 is made leader
    at 0 ms and at 970 ms appends an entry that every follower gets (`lag` with no laggards)."""
    d = line_scenario(base, base["config"]["election_timeout_ms_min"],
                      base["config"]["election_timeout_ms_max"], seed)
    d["actions"] = [{"at": 0, "do": "timeout", "node": "n1"},
                    {"at": 970, "do": "lag", "followers": 0}]
    d["duration_ms"] = 1100
    return d


def broadcast_trial(args: tuple[dict, int]) -> float | None:
    """One sample of the config's broadcast time (ms), measured by `broadcast_time_ms`."""
    base, seed = args
    sc = parse_scenario(broadcast_scenario(base, seed))
    sim = Simulation(sc, checkers=False)
    m = BroadcastTime(sim.topology, sc.config, sc)
    sim.subscribe(m, messages=True)
    sim.run_until(sc.duration_ms)
    return m.value()


def run_broadcast(base: dict, trials: int, workers: int = 2) -> dict[str, Any]:
    """The measured broadcast time of the lesson's config over `trials` seeds (§5.6's "average
    time"): the mean, and the spread."""
    jobs = [(base, s) for s in range(trials)]
    if workers > 1:
        with multiprocessing.get_context("fork").Pool(workers) as pool:
            values = pool.map(broadcast_trial, jobs, chunksize=max(1, trials // (workers * 4)))
    else:
        values = [broadcast_trial(j) for j in jobs]
    return summarise(values)


def summarise(values: list[float | None]) -> dict[str, Any]:
    """Percentiles over every trial, a censored one (no leader within the trial) counting as
    longer than any (+inf: a percentile that lands on one is None, unknown); the mean only when
    no trial is censored."""
    done = sorted(v for v in values if v is not None)
    censored = len(values) - len(done)
    out: dict[str, Any] = {"trials": len(values), "elected": len(done), "censored": censored}
    if not values:
        return out
    every = done + [None] * censored  # sorted, the censored last

    def at(q: float):
        v = every[min(len(every) - 1, int(q * len(every)))]
        return None if v is None else round(v, 1)

    n = len(every)
    if n % 2:
        median = every[n // 2]
    else:
        lo, hi = every[n // 2 - 1], every[n // 2]
        median = None if lo is None or hi is None else (lo + hi) / 2
    out.update(mean=round(statistics.fmean(done), 1) if done and not censored else None,
               median=None if median is None else round(median, 1),
               p90=at(0.9), p99=at(0.99), max=None if censored or not done else round(done[-1], 1))
    return out


def compare(name: str, s: dict) -> list[dict]:
    """Each published point of this line beside ours, and whether it is within the tolerance
    (for a worst case: at most the paper's x 1.3)."""
    out = []
    for stat, paper in PAPER.get(name, {}).items():
        ours = s.get(stat)
        if s.get("censored"):
            ours = None if stat == "max" else ours  # a censored trial: the worst is unknown
        if stat == "max":
            ok = ours is not None and ours <= paper * (1 + TOLERANCE)
        else:
            ok = ours is not None and abs(ours - paper) <= TOLERANCE * paper
        out.append({"line": name, "stat": stat, "paper": paper, "ours": ours, "ok": ok})
    return out


def run_lines(base: dict, lines, trials: int, workers: int = 2, first_seed: int = 0) -> dict:
    """Every line's values (seed order) and summary, computed on `workers` processes."""
    jobs = [(base, lo, hi, s) for lo, hi in lines for s in range(first_seed, first_seed + trials)]
    if workers > 1:
        ctx = multiprocessing.get_context("fork")
        with ctx.Pool(workers) as pool:
            values = pool.map(trial, jobs, chunksize=max(1, len(jobs) // (workers * 16)))
    else:
        values = [trial(j) for j in jobs]
    out: dict[str, Any] = {}
    for i, (lo, hi) in enumerate(lines):
        vals = values[i * trials:(i + 1) * trials]
        name = line_name(lo, hi)
        s = summarise(vals)
        out[name] = {"lo": lo, "hi": hi, "values": vals, "summary": s,
                     "paper": compare(name, s)}
    return out


# What the published points depend on (docs/figure16.md, "Why these rules"): the lesson's
# config with the network, the storage and the two thesis overlaps changed, one row each.
# LogCabin's order: the candidate writes its term and vote before RequestVote leaves and the
# leader before its AppendEntries do (RaftConsensus::startNewElection, becomeLeader, 2013).
_NET = {"latency_ms_min": 2, "latency_ms_max": 3}
_DISK = {"latency_ms_min": 5, "latency_ms_max": 7.5, "dist": "exponential"}
_BOTH = {"overlap_vote_write": True, "leader_parallel_write": True}
_NONE = {"overlap_vote_write": False, "leader_parallel_write": False}
VARIANTS = (
    ("the lesson: thesis §9.3 + §10.2.1 overlaps", _NET, _DISK, _BOTH),
    ("LogCabin's order (no overlap), same disk and network", _NET, _DISK, _NONE),
    ("only §9.3 (candidate's write overlapped)", _NET, _DISK,
     {"overlap_vote_write": True, "leader_parallel_write": False}),
    ("only §10.2.1 (leader's write overlapped)", _NET, _DISK,
     {"overlap_vote_write": False, "leader_parallel_write": True}),
    ("LogCabin's order, faster network (one-way 0.5-1.5 ms), disk 10-14 ms",
     {"latency_ms_min": 0.5, "latency_ms_max": 1.5}, {"latency_ms_min": 10, "latency_ms_max": 14},
     _NONE),
    ("LogCabin's order, one-way 0.5-1.5 ms, disk 1-3 ms (the old lesson)",
     {"latency_ms_min": 0.5, "latency_ms_max": 1.5}, {"latency_ms_min": 1, "latency_ms_max": 3},
     _NONE),
    ("overlaps, one-way 1-2 ms, disk 7 ms + exp(3.5)",
     {"latency_ms_min": 1, "latency_ms_max": 2},
     {"latency_ms_min": 7, "latency_ms_max": 10.5, "dist": "exponential"}, _BOTH),
    ("overlaps, one-way 3-4 ms, disk 3 ms + exp(1.5)",
     {"latency_ms_min": 3, "latency_ms_max": 4},
     {"latency_ms_min": 3, "latency_ms_max": 4.5, "dist": "exponential"}, _BOTH),
    ("network only: one-way 4-6 ms, no disk (cf. Howard et al.: one-way ~N(5, 3) ms)",
     {"latency_ms_min": 4, "latency_ms_max": 6}, {"latency_ms_min": 0, "latency_ms_max": 0}, _BOTH),
)
VARIANT_LINES = ((150, 155), (150, 200), (12, 24))


def run_variants(load, trials: int, workers: int = 2) -> list[dict[str, Any]]:
    """One row per VARIANTS entry: its measured broadcast time and the published points' lines
    (`trials` seeds each), the paper's figures beside."""
    rows = []
    for title, net, disk, switches in VARIANTS:
        base = copy.deepcopy(load(GRAPHS[0][1]))
        base["network"], base["storage"] = dict(net), dict(disk)
        base["config"] = {**base["config"], **switches}
        if not disk["latency_ms_max"]:
            del base["storage"]
        res = run_lines(base, VARIANT_LINES, trials, workers=workers)
        row = {"variant": title, "network": net, "storage": disk, **switches,
               "broadcast_ms": run_broadcast(base, min(trials, 200), workers)["mean"]}
        for name, line in res.items():
            for p in line["paper"]:
                row[f"{name} {p['stat']}"] = p["ours"]
                row[f"{name} {p['stat']} ok"] = p["ok"]
            row[f"{name} censored"] = line["summary"]["censored"]
        rows.append(row)
    return rows


GRAPHS = (("top: 150 ms minimum, more randomness", "figure16_top", TOP),
          ("bottom: lower timeouts", "figure16_bottom", BOTTOM))


def run_figure(load, trials: int, workers: int = 2) -> dict[str, Any]:
    """Both graphs: `load(name)` gives the lesson scenario (a dict) each graph's lines start
    from. Returns the table (one row per line, the paper's points beside), every trial's value
    by graph and line, the CSV rows and the SVG."""
    graphs, table, values, rows = [], [], {}, [["graph", "line", "seed", "downtime_ms"]]
    for title, lesson, lines in GRAPHS:
        res = run_lines(load(lesson), lines, trials, workers=workers)
        graphs.append((title, res))
        key = title.split(":")[0]
        values[key] = {name: line["values"] for name, line in res.items()}
        for name, line in res.items():
            table.append({"graph": key, "line": name, **line["summary"], "paper": line["paper"]})
            rows.extend([key, name, seed, "" if v is None else v]
                        for seed, v in enumerate(line["values"]))
    bcast = run_broadcast(load(GRAPHS[0][1]), min(trials, 200), workers=workers)
    return {"table": table, "values": values, "csv": rows, "svg": svg(graphs),
            "broadcast_ms": bcast}


def cdf_points(values: list[float | None]) -> list[tuple[float, float]]:
    """(downtime ms, fraction of trials at or below it), censored trials never reached."""
    n = len(values)
    done = sorted(v for v in values if v is not None)
    return [(v, (i + 1) / n) for i, v in enumerate(done)]


def svg(graphs: list[tuple[str, dict]], width: int = 640, height: int = 260) -> str:
    """The CDFs (log time axis, 100 ms .. 10 s, or 10 ms .. 1 s for the bottom graph), one panel
    per graph, the paper's points marked as rings. Hand-written SVG: no plotting dependency."""
    import math

    colours = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b"]
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" '
             f'height="{height * len(graphs)}" font-family="sans-serif" font-size="11">']
    for g, (title, lines) in enumerate(graphs):
        y0 = g * height
        left, right, top, bottom = 50, width - 150, y0 + 20, y0 + height - 35
        lo_ms, hi_ms = (100, 10_000) if title.startswith("top") else (10, 1000)

        def x(ms: float) -> float:
            ms = min(max(ms, lo_ms), hi_ms)
            return left + (right - left) * (math.log10(ms) - math.log10(lo_ms)) / (
                math.log10(hi_ms) - math.log10(lo_ms))

        def y(f: float) -> float:
            return bottom - (bottom - top) * f

        parts.append(f'<text x="{left}" y="{y0 + 13}" font-weight="bold">{title}</text>')
        parts.append(f'<rect x="{left}" y="{top}" width="{right - left}" height="{bottom - top}" '
                     f'fill="none" stroke="#999"/>')
        tick = lo_ms
        while tick <= hi_ms:
            parts.append(f'<line x1="{x(tick):.1f}" y1="{bottom}" x2="{x(tick):.1f}" y2="{top}" '
                         f'stroke="#eee"/><text x="{x(tick):.1f}" y="{bottom + 13}" '
                         f'text-anchor="middle">{tick:g}</text>')
            tick *= 10
        for f in (0, 0.5, 1):
            parts.append(f'<text x="{left - 5}" y="{y(f) + 4:.1f}" text-anchor="end">'
                         f'{int(f * 100)}%</text>')
        parts.append(f'<text x="{(left + right) / 2}" y="{bottom + 28}" text-anchor="middle">'
                     f'time without leader (ms)</text>')
        for i, (name, line) in enumerate(lines.items()):
            c = colours[i % len(colours)]
            pts = cdf_points(line["values"])
            if len(pts) > 250:  # enough to draw; keeps the file small
                pts = pts[::len(pts) // 200] + pts[-1:]
            if pts:
                path = "M" + " L".join(f"{x(v):.1f},{y(f):.1f}" for v, f in pts)
                parts.append(f'<path d="{path}" fill="none" stroke="{c}" stroke-width="1.5"/>')
            cens = line["values"].count(None)
            note = "" if not cens else " (all &gt; 10 s)" if cens == len(line["values"]) else (
                f" ({cens} &gt; 10 s)")
            parts.append(f'<text x="{right + 8}" y="{top + 14 * i + 10}" fill="{c}">{name} ms'
                         f'{note}</text>')
            for p in line["paper"]:
                frac = {"median": 0.5, "mean": None, "max": 1.0}[p["stat"]]
                if frac is not None:
                    parts.append(f'<circle cx="{x(p["paper"]):.1f}" cy="{y(frac):.1f}" r="4" '
                                 f'fill="none" stroke="{c}" stroke-width="1.5">'
                                 f'<title>paper: {p["stat"]} {p["paper"]:g} ms</title></circle>')
    parts.append("</svg>")
    return "\n".join(parts) + "\n"


__all__ = ["TOP", "BOTTOM", "PAPER", "GRAPHS", "line_scenario", "trial", "summarise", "compare",
           "broadcast_scenario", "broadcast_trial", "run_broadcast", "VARIANTS", "run_variants",
           "run_lines", "run_figure", "cdf_points", "svg"]
