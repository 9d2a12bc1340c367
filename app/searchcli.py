"""`playground search` and `playground bench --search`: the counterexample search of
`engine/search.py` with a wall-clock budget, a share link and the figures (states per second,
memory). The engine's search is deterministic given its budget in runs or states; the seconds are
only here, as a `stop()` it is asked between runs or states.
"""

from __future__ import annotations

import multiprocessing
import resource
import time
from pathlib import Path

from engine import search as engine_search

ROOT = Path(__file__).resolve().parent.parent
SEARCH_SCENARIOS = ROOT / "scenarios" / "search"  # <protocol>.<mutation>.json, for the bench
STRATEGIES = ("random", "explore")
BFS_STATES = 2000  # breadth first is ~20x slower per state than a walk (a restore per state)


def add_arguments(s) -> None:
    s.add_argument("scenario", help="scenario JSON file: the configuration to search (its nemesis, "
                   "if any, is the random strategy's)")
    s.add_argument("--mutation", required=True, help="the protocol mutation to switch on")
    s.add_argument("--strategy", choices=STRATEGIES, default="explore",
                   help="random: seeds with the nemesis; explore: delivery orders and timer "
                   "firings (default)")
    s.add_argument("--budget-s", type=float, default=60.0, help="wall-clock budget (default 60)")
    s.add_argument("--max-runs", type=int, default=1_000_000, help="random: at most this many runs")
    s.add_argument("--first-seed", type=int, default=0, help="random: the first seed (default 0)")
    s.add_argument("--max-states", type=int, default=10**9, help="explore: at most this many states")
    s.add_argument("--bfs-states", type=int, default=None,
                   help="explore: breadth-first for this many states, then random walks "
                   f"(default: a tenth of --max-states, at most {BFS_STATES})")
    s.add_argument("--max-depth", type=int, default=engine_search.MAX_DEPTH,
                   help=f"explore: choices per path (default {engine_search.MAX_DEPTH})")
    s.add_argument("--max-crashes", type=int, default=2, help="explore: crashes per path (default 2)")
    s.add_argument("--seed", type=int, default=0, help="explore: the random walks' seed (default 0)")
    s.add_argument("--base-url", default="", help="prefix for the share link (default: path only)")
    s.add_argument("--out", help="also write the counterexample scenario to this file")


def search_once(scn, mutation: str, strategy: str, budget_s: float, **opts) -> dict:
    """One search with a wall-clock budget; the engine's result plus elapsed seconds, rate and
    this process's peak memory."""
    t0 = time.perf_counter()
    deadline = t0 + budget_s
    stop = lambda: time.perf_counter() > deadline  # noqa: E731
    if strategy == "random":
        r = engine_search.random_search(scn, mutation, runs=opts.get("max_runs", 1_000_000),
                                        first_seed=opts.get("first_seed", 0), stop=stop)
    else:
        max_states = opts.get("max_states", 10**9)
        bfs = opts.get("bfs_states")
        r = engine_search.explore(scn, mutation, max_states=max_states,
                                  bfs_states=min(max_states // 10, BFS_STATES) if bfs is None else bfs,
                                  max_depth=opts.get("max_depth", engine_search.MAX_DEPTH),
                                  max_crashes=opts.get("max_crashes", 2),
                                  seed=opts.get("seed", 0), stop=stop)
    elapsed = time.perf_counter() - t0
    out = r.as_dict()
    out["elapsed_s"] = round(elapsed, 2)
    out[f"{r.unit}_per_s"] = round(r.explored / elapsed, 1) if elapsed > 0 else None
    out["max_rss_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
    return out


def share_link(scenario: dict, t_ms: float, base_url: str = "") -> str:
    from engine.scenario import parse_scenario

    from . import share

    return f"{base_url.rstrip('/')}/?share={share.encode(parse_scenario(scenario), t_ms)}"


def run_search(args, emit, fail) -> int:
    import orjson

    from engine.scenario import ScenarioError, parse_scenario

    try:
        raw = Path(args.scenario).read_bytes()
    except OSError as e:
        return fail(f"cannot read scenario {args.scenario!r}: {e.strerror}")
    for name in ("budget_s", "max_runs", "max_states", "max_depth"):
        if getattr(args, name) <= 0:
            return fail(f"--{name.replace('_', '-')}: must be positive")
    if args.max_crashes < 0 or (args.bfs_states is not None and args.bfs_states < 0):
        return fail("--max-crashes and --bfs-states: must not be negative")
    try:
        scn = parse_scenario(raw)
        engine_search.with_mutation(scn, args.mutation)
    except (ScenarioError, engine_search.SearchError) as e:
        return fail(f"{args.scenario}: {e}")
    out = search_once(scn, args.mutation, args.strategy, args.budget_s,
                      max_runs=args.max_runs, first_seed=args.first_seed,
                      max_states=args.max_states, bfs_states=args.bfs_states,
                      max_depth=args.max_depth, max_crashes=args.max_crashes, seed=args.seed)
    out["share"] = None
    if out["found"]:
        out["share"] = share_link(out["scenario"], out["t"], args.base_url)
        if args.out:
            try:
                Path(args.out).write_bytes(orjson.dumps(out["scenario"], option=orjson.OPT_INDENT_2))
            except OSError as e:
                return fail(f"cannot write {args.out!r}: {e.strerror}")
    emit(out)
    return 0 if out["found"] else 1


# --- the benchmark -----------------------------------------------------------------------------

def _bench_job(path: str, mutation: str, strategy: str, budget_s: float) -> dict:
    from engine.scenario import parse_scenario

    scn = parse_scenario(Path(path).read_bytes())
    out = search_once(scn, mutation, strategy, budget_s)
    replayed = None
    if out["found"]:
        from engine.run import run_scenario

        summary = run_scenario(parse_scenario(out["scenario"]))
        replayed = out["invariant"] in {v["invariant"] for v in summary["violations"]}
    keep = ("found", "invariant", "t", "explored", "unit", "elapsed_s", "runs_per_s",
            "states_per_s", "max_rss_mb", "walks", "depth")
    row = {k: out[k] for k in keep if k in out}
    row["actions"] = len(out["scenario"]["actions"]) if out["found"] else None
    row["replayed"] = replayed
    return row


def run_search_bench(quick: bool = False) -> dict:
    """Every mutation of every protocol, each strategy in a fresh process (so its peak memory is
    its own), on the configuration `scenarios/search/<protocol>.<mutation>.json`: a minute each
    (ten seconds with --quick); a mutation neither strategy found in that time gets a ten-minute
    exploration."""
    from engine.protocols import REGISTRY, get_protocol

    budget = 10.0 if quick else 60.0
    rows = []
    ctx = multiprocessing.get_context("fork")
    for proto in REGISTRY:
        for mutation in sorted(get_protocol(proto).mutations):
            path = SEARCH_SCENARIOS / f"{proto}.{mutation}.json"
            row: dict = {"protocol": proto, "mutation": mutation}
            rows.append(row)
            if not path.exists():
                row["error"] = f"no scenario {path.relative_to(ROOT)}"
                continue
            for strategy in STRATEGIES:
                with ctx.Pool(1, maxtasksperchild=1) as pool:
                    row[strategy] = pool.apply(_bench_job, (str(path), mutation, strategy, budget))
            if not quick and not any(row[s]["found"] for s in STRATEGIES):
                with ctx.Pool(1, maxtasksperchild=1) as pool:
                    row["explore_long"] = pool.apply(_bench_job, (str(path), mutation, "explore",
                                                                  600.0))
    return {"budget_s": budget, "rows": rows}
