"""`playground sweep`: runs a grid of jobs (engine/sweep.py) in local worker processes or on a Dask
cluster, writes the rows to a JSONL file in job order as they come in, and resumes from that file.

Jobs travel in batches (one task runs several short runs, so the cost of a task's round trip is
shared); each batch's rows are buffered until every earlier job's row has been written, so the file
is always a prefix of the full table, whatever finishes first. A rerun with the same `--out`
checks the rows already there against the jobs they should be (a different sweep is refused),
drops a last line cut short by a kill, and runs only the rest.
"""

from __future__ import annotations

import csv
import multiprocessing
import os
import signal
import sys
import threading
import time
from dataclasses import dataclass, field
from typing import Callable, Iterable, Iterator

import orjson

from engine.sweep import (Grid, SweepError, describe, failed, first_failure_ms, job_key,
                          job_scenario, row_key, run_batch, summarise)

BATCH_RUNS = 8  # jobs per task; small enough that 2 workers share a small grid evenly


def batches(todo: list[tuple[int, int, tuple]], size: int) -> list[list[tuple[int, int, tuple]]]:
    return [todo[i:i + size] for i in range(0, len(todo), size)]


def batch_size(n_jobs: int, workers: int) -> int:
    """At most BATCH_RUNS, and at least four tasks per worker when the grid allows."""
    return max(1, min(BATCH_RUNS, n_jobs // max(1, 4 * workers)))


# --- resuming ------------------------------------------------------------------------------------

def fingerprint(base: dict, grid: Grid) -> str:
    """What a results file was written for: the base scenario and the whole grid (a resumed
    sweep must be the same sweep, not one whose rows merely share seeds and values)."""
    import hashlib

    what = {"scenario": base, "seeds": list(grid.seeds), "nodes": grid.nodes,
            "sets": [[k, list(v)] for k, v in grid.sets], "measures": list(grid.measures)}
    return hashlib.sha256(orjson.dumps(what, option=orjson.OPT_SORT_KEYS)).hexdigest()


def check_fingerprint(path: str, base: dict, grid: Grid) -> None:
    """`path + ".sweep"` holds the fingerprint of the sweep that writes `path`: written when the
    sweep starts afresh; a resume of another sweep (another scenario or grid) is refused."""
    side = path + ".sweep"
    mine = fingerprint(base, grid)
    try:
        with open(path, "rb") as f:
            has_rows = bool(f.read(1))
    except FileNotFoundError:
        has_rows = False
    if has_rows:
        try:
            with open(side, encoding="utf-8") as f:
                theirs = f.read().strip()
        except FileNotFoundError:
            raise SweepError(f"--out {path}: has results but no {side} saying which sweep wrote "
                             "them; use another --out") from None
        if theirs != mine:
            raise SweepError(f"--out {path}: written by another sweep (another scenario, seeds, "
                             "--nodes, --set or --measure); use another --out") from None
        return
    try:
        with open(side, "w", encoding="utf-8") as f:
            f.write(mine + "\n")
    except OSError as e:
        raise SweepError(f"--out {side}: cannot write ({e.strerror})") from None


def resume(path: str, expected: list[tuple], grid: Grid) -> int:
    """How many rows of `path` are done (0 when it does not exist). Truncates a last line cut
    short by a kill; raises SweepError when a row is not the job it should be."""
    try:
        f = open(path, "r+b")
    except FileNotFoundError:
        return 0
    except OSError as e:
        raise SweepError(f"--out {path}: cannot open ({e.strerror})") from None
    with f:
        good_bytes = 0
        n = 0
        for line in f:
            if not line.endswith(b"\n"):
                break  # cut short: rerun this job
            try:
                row = orjson.loads(line)
            except orjson.JSONDecodeError:
                raise SweepError(f"--out {path}: line {n + 1} is not JSON; is it a sweep's results?") from None
            if n >= len(expected):
                raise SweepError(f"--out {path}: has more rows than this sweep's {len(expected)} runs "
                                 f"(another sweep's results? use another --out)")
            if not isinstance(row, dict) or row_key(row, grid) != expected[n]:
                raise SweepError(f"--out {path}: line {n + 1} is not this sweep's run {n + 1} "
                                 f"(another sweep's results? use another --out)")
            missing = [m for m in grid.measures if m not in row]
            if missing:
                raise SweepError(f"--out {path}: line {n + 1} has no measure {missing[0]!r} "
                                 f"(written with other --measure options; use another --out)")
            good_bytes += len(line)
            n += 1
        f.truncate(good_bytes)
    return n


# --- running -------------------------------------------------------------------------------------

def _run_batch_star(args):
    return run_batch(*args)


def _worker_init() -> None:
    """A worker leaves Ctrl-C to the parent (which stops the pool) and dies quietly on SIGTERM."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)


def local_results(base: dict, work: list[list], grid: Grid, workers: int) -> Iterator[list]:
    """Each batch's rows, in batch order, from `workers` local processes (fork where the platform
    has it: the engine starts no threads; else spawn)."""
    methods = multiprocessing.get_all_start_methods()
    ctx = multiprocessing.get_context("fork" if "fork" in methods else "spawn")
    with ctx.Pool(workers, initializer=_worker_init) as pool:
        yield from pool.imap(_run_batch_star, [(base, b, grid) for b in work])


def dask_client(scheduler: str):
    """A client of the Dask cluster at `scheduler`, or SweepError saying why not."""
    try:
        from dask.distributed import Client
    except ImportError:
        raise SweepError("--scheduler: dask.distributed is not installed "
                         "(pip install 'ds-playground[lab]')") from None
    try:
        return Client(scheduler, timeout="10s")
    except (OSError, TimeoutError, ValueError) as e:
        raise SweepError(f"--scheduler {scheduler}: cannot connect ({e})") from None


def dask_results(client, base: dict, work: list[list], grid: Grid) -> Iterator[list]:
    """Each batch's rows, in batch order, from the Dask cluster behind `client` (buffered here
    until their turn); closes the client at the end."""
    from dask.distributed import as_completed

    try:
        [base_f] = client.scatter([base], broadcast=True)
        futures = [client.submit(run_batch, base_f, b, grid, pure=False) for b in work]
        order = {f.key: i for i, f in enumerate(futures)}
        ready: dict[int, list] = {}
        nxt = 0
        for fut in as_completed(futures):
            ready[order[fut.key]] = fut.result()
            fut.release()
            while nxt in ready:
                yield ready.pop(nxt)
                nxt += 1
    finally:
        client.close()


@dataclass
class Outcome:
    rows: list[dict]
    runs: int                      # in the grid
    resumed: int                   # rows found in the file
    wall_s: float                  # for the rows run now
    failures: list[tuple[int, dict]] = field(default_factory=list)


def sweep(base: dict, grid: Grid, out: str, *, workers: int = 1, scheduler: str | None = None,
          progress: Callable[[int, int], None] | None = None) -> Outcome:
    """Run what `out` does not have yet, append it there in job order, return every row."""
    jobs = list(grid.jobs())
    expected = [job_key(s, p, grid) for s, p in jobs]
    check_fingerprint(out, base, grid)
    done = resume(out, expected, grid)
    todo = [(i, s, p) for i, (s, p) in enumerate(jobs) if i >= done]
    work = batches(todo, batch_size(len(todo), workers if scheduler is None else 4))
    t0 = time.perf_counter()
    if todo:
        results = (dask_results(dask_client(scheduler), base, work, grid) if scheduler
                   else local_results(base, work, grid, workers))
        try:
            f = open(out, "ab")
        except OSError as e:
            raise SweepError(f"--out {out}: cannot write ({e.strerror})") from None
        with f:
            written = done
            for rows in results:
                for _, row in rows:
                    f.write(orjson.dumps(row) + b"\n")
                f.flush()
                written += len(rows)
                if progress:
                    progress(written, len(jobs))
    wall = time.perf_counter() - t0
    rows = read_rows(out)
    return Outcome(rows, len(jobs), done, wall, [(i, r) for i, r in enumerate(rows) if failed(r)])


def read_rows(path: str) -> list[dict]:
    with open(path, "rb") as f:
        return [orjson.loads(line) for line in f if line.strip()]


# --- the CSV, the links, the printed summary ---------------------------------------------------

def csv_path(out: str) -> str:
    root, ext = os.path.splitext(out)
    return (root if ext in (".jsonl", ".ndjson", ".json") else out) + ".csv"


def flat(row: dict) -> dict:
    """A row as CSV columns: `violations` as their number, an object's fields as `name.field`
    (`ops.ok`, `roles.n1`)."""
    out: dict[str, dict] = {}  # the row's field -> {column: value}
    for k, v in row.items():
        if k == "violations" and isinstance(v, list):
            out[k] = {k: len(v)}
        elif isinstance(v, dict):
            out[k] = {f"{k}.{f}": x for f, x in v.items()}
        else:
            out[k] = {k: v}
    return out


def csv_cell(v):
    """A value as a CSV cell: `null` as empty, booleans as true/false, lists as compact JSON."""
    if v is None:
        return ""
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (dict, list)):
        return orjson.dumps(v, option=orjson.OPT_SORT_KEYS).decode()
    return v


def write_csv(rows: list[dict], path: str) -> None:
    flats = [{c: x for cols in flat(r).values() for c, x in cols.items()} for r in rows]
    groups: dict[str, dict[str, None]] = {}  # a field -> its columns, in the order first seen
    for r in rows:
        for k, cols in flat(r).items():
            groups.setdefault(k, {}).update(dict.fromkeys(cols))
    columns = [c for cols in groups.values() for c in cols]
    with open(path, "w", newline="") as f:
        w = csv.writer(f, lineterminator="\n")
        w.writerow(columns)
        for r in flats:
            w.writerow([csv_cell(r.get(k)) for k in columns])


def share_link(base: dict, row: dict, grid: Grid, base_url: str = "") -> str:
    """A link that opens the failing run in the page at its first violation."""
    from app.share import encode

    point = (row["nodes"] if grid.nodes else None, *(row[n] for n in grid.point_names()))
    scn = job_scenario(base, row["seed"], point, grid)
    return f"{base_url.rstrip('/')}/?share={encode(scn, first_failure_ms(row))}"


def _fmt(v) -> str:
    if v is None:
        return "-"
    return f"{v:,.3f}".rstrip("0").rstrip(".") if isinstance(v, float) else f"{v:,}"


def report_lines(o: Outcome, base: dict, grid: Grid, base_url: str = "",
                 max_failures: int = 20) -> Iterable[str]:
    for p in summarise(o.rows, grid):
        head = p["point"] or "all runs"
        yield f"{head}: {p['runs']} runs, {p['violations']} with violations"
        for m, s in p["measures"].items():
            missing = f" (none in {s['missing']})" if s["missing"] else ""
            yield (f"  {m}: count {s['count']}{missing}, median {_fmt(s['median'])}, "
                   f"p90 {_fmt(s['p90'])}, p99 {_fmt(s['p99'])}, max {_fmt(s['max'])}")
    if o.failures:
        yield f"failing runs ({len(o.failures)}):"
        for _, row in o.failures[:max_failures]:
            point = " ".join(x for x in [f"seed {row['seed']}", describe(
                (row["nodes"] if grid.nodes else None, *(row[n] for n in grid.point_names())), grid)] if x)
            what = row["violations"][0]["invariant"] if row.get("violations") else "Linearizability"
            yield (f"  {point}: {what} at {_fmt(first_failure_ms(row))} ms  "
                   f"{share_link(base, row, grid, base_url)}")
        if len(o.failures) > max_failures:
            yield f"  ... and {len(o.failures) - max_failures} more (the `violations` column of the results)"


def progress_printer(stream, every_s: float = 2.0) -> Callable[[int, int], None]:
    last = [0.0]

    def show(done: int, total: int) -> None:
        now = time.monotonic()
        if now - last[0] >= every_s or done == total:
            last[0] = now
            stream.write(f"\r{done:,}/{total:,} runs")
            if done == total:
                stream.write("\n")
            stream.flush()
    return show


__all__ = ["sweep", "resume", "write_csv", "csv_path", "report_lines", "share_link", "read_rows",
           "Outcome"]


# --- the command ---------------------------------------------------------------------------------

def add_arguments(s) -> None:
    """The `sweep` subcommand's options (app/cli.py)."""
    s.add_argument("scenario", help="scenario JSON file (see scenarios/)")
    s.add_argument("--seeds", required=True, help="seeds: FIRST..LAST (both included), N, or a list: 0..99,500")
    s.add_argument("--nodes", help="node counts, e.g. 3,5,7 (default: the scenario's)")
    s.add_argument("--set", action="append", default=[], metavar="NAME=V1,V2",
                   help="vary a scenario field by its dotted name, e.g. "
                        "config.election_timeout_ms_max=200,300 (repeatable: the grid is the product)")
    s.add_argument("--measure", action="append", default=[], metavar="NAME",
                   help="a measure of the scenario's protocol, by name (repeatable)")
    s.add_argument("--workers", type=int, help="local worker processes (default: every core)")
    s.add_argument("--scheduler", help="run on the Dask cluster whose scheduler is at tcp://HOST:8786")
    s.add_argument("--out", default="results.jsonl",
                   help="results, one JSON object per run (a CSV is written beside it); an "
                        "existing file of the same sweep is continued")
    s.add_argument("--base-url", default="", help="prefix for the failing runs' share links "
                   "(e.g. https://playground.example.org); default: a path-only link")


def grid_from_args(args) -> Grid:
    from engine.sweep import parse_int_list, parse_set

    sets = [parse_set(s) for s in args.set]
    names = [n for n, _ in sets]
    dup = next((n for n in names if names.count(n) > 1), None)
    if dup:
        raise SweepError(f"--set {dup}: given twice (list every value in one --set)")
    dup = next((m for m in args.measure if args.measure.count(m) > 1), None)
    if dup:
        raise SweepError(f"--measure {dup}: given twice")
    nodes = tuple(parse_int_list(args.nodes, "--nodes", lo=1)) if args.nodes else None
    return Grid(seeds=tuple(parse_int_list(args.seeds, "--seeds")), nodes=nodes,
                sets=tuple((n, tuple(v)) for n, v in sets), measures=tuple(args.measure))


def cmd_sweep(args, out=None, err=None) -> int:
    """Exit 0, 3 when a run failed a safety check, 2 on bad input (one line on stderr)."""
    from engine.sweep import validate

    out, err = out or sys.stdout, err or sys.stderr

    def fail(msg: str) -> int:
        err.write(f"playground: {msg}\n")
        return 2

    try:
        with open(args.scenario, "rb") as f:
            raw = f.read()
    except OSError as e:
        return fail(f"cannot read scenario {args.scenario!r}: {e.strerror}")
    try:
        base = orjson.loads(raw)
    except orjson.JSONDecodeError as e:
        return fail(f"{args.scenario}: not valid JSON ({e})")
    if not isinstance(base, dict):
        return fail(f"{args.scenario}: expected a JSON object")
    if args.workers is not None and args.workers < 1:
        return fail("--workers: at least 1")
    workers = args.workers or os.cpu_count() or 1

    def stop(signum, frame):
        raise KeyboardInterrupt

    main_thread = threading.current_thread() is threading.main_thread()
    old = signal.signal(signal.SIGTERM, stop) if main_thread else None
    try:
        grid = grid_from_args(args)
        validate(base, grid)
        o = sweep(base, grid, args.out, workers=workers, scheduler=args.scheduler,
                  progress=progress_printer(err) if err.isatty() else None)
    except SweepError as e:
        return fail(f"{args.scenario}: {e}" if str(e).startswith("scenario") else str(e))
    except KeyboardInterrupt:
        err.write(f"\nplayground: interrupted; {args.out} keeps the runs done so far: "
                  f"rerun the same command to continue\n")
        return 130
    finally:
        if main_thread:
            signal.signal(signal.SIGTERM, old)
    write_csv(o.rows, csv_path(args.out))
    ran = o.runs - o.resumed
    where = f"Dask at {args.scheduler}" if args.scheduler else f"{workers} worker process" + ("es" if workers > 1 else "")
    rate = f", {ran / o.wall_s:,.1f} runs/s" if ran and o.wall_s > 0 else ""
    resumed = f" ({o.resumed:,} already in {args.out})" if o.resumed else ""
    out.write(f"sweep {args.scenario}: {o.runs:,} runs{resumed}, {ran:,} run now on {where} in "
              f"{o.wall_s:.1f} s{rate}\n")
    for line in report_lines(o, base, grid, args.base_url):
        out.write(line + "\n")
    out.write(f"results: {args.out}, {csv_path(args.out)}\n")
    return 3 if o.failures else 0
