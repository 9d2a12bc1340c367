"""The page's Experiments tab on the server: trials of a measure and counterexample searches, run
in worker processes (never in the event loop), streamed back as they arrive (`/ws/lab`,
docs/ws-protocol.md "The lab socket").

    LabPool        the server's worker processes: `PLAYGROUND_LAB_WORKERS` slots in all, shared
                   by every page's experiments (a slot is one busy process)
    parse_trials   a `trials` request -> (base scenario dict, engine.sweep.Grid), checked
    run_trials     the grid's rows, batch by batch, through the pool (app/sweep.py's batches,
                   engine/sweep.py's rows: the same rows `playground sweep` writes)
    parse_search   a `search` request -> (scenario, mutation, strategies, budgets), checked
    run_search     engine/search.py in a process of its own (it holds one slot), its progress
                   and its verdict through a pipe; killed when cancelled

Every refusal is a `LabError` naming the field (and the setting, for a cap).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import concurrent.futures.process
import multiprocessing
import os
import time
from dataclasses import dataclass
from typing import Any, Awaitable, Callable

import orjson

from engine.scenario import Scenario, ScenarioError
from engine.sweep import Grid, SweepError, job_scenario, run_batch, summarise_points, validate

from .limits import check_scenario, quote
from .settings import Settings
from .sweep import _worker_init, batch_size, batches, share_link

MAX_VALUES = 4  # a parameter's values in one experiment (one line per value on the charts)
STRATEGIES = ("random", "explore")
PROGRESS_EVERY_S = 0.25  # a search's progress messages, at most this often

Send = Callable[[dict], Awaitable[None]]


class LabError(ValueError):
    """A refused experiment; the message names the field or the setting."""


def _ctx():
    # spawn: the server process runs threads (uvicorn, the test client); a fork of it could
    # inherit a lock held by one of them.
    return multiprocessing.get_context("spawn")


def _worker_start(server_pid: int) -> None:
    """A lab process: Ctrl-C is the server's (app/sweep.py's worker set-up), and it ends itself
    when the server `server_pid` is gone (killed, crashed: a shutdown that never ran), so that no
    worker outlives it, even one that was still starting when the server died; a thread looks
    every second."""
    import threading

    _worker_init()

    def watch() -> None:
        while os.getppid() == server_pid:
            time.sleep(1.0)
        os._exit(0)

    threading.Thread(target=watch, name="lab-watchdog", daemon=True).start()


class LabPool:
    """`workers` slots server-wide. A trials batch holds a slot while a pool process runs it; a
    search holds one for its whole life in a process of its own. Slots are granted first come,
    first served, so two pages' experiments share the processes."""

    def __init__(self, workers: int):
        self.workers = workers
        self._executor: concurrent.futures.ProcessPoolExecutor | None = None
        self._slots: asyncio.Semaphore | None = None
        self.batches_started = 0  # trials batches handed to a process (tests read it)
        self.running = 0  # experiments under way, trials and searches (app/routes/lab.py)

    @property
    def slots(self) -> asyncio.Semaphore:
        if self._slots is None:  # made in the event loop that uses it
            self._slots = asyncio.Semaphore(self.workers)
        return self._slots

    def executor(self) -> concurrent.futures.ProcessPoolExecutor:
        if self._executor is None:
            self._executor = concurrent.futures.ProcessPoolExecutor(
                self.workers, mp_context=_ctx(), initializer=_worker_start,
                initargs=(os.getpid(),))
        return self._executor

    def busy(self) -> int:
        return self.workers - self.slots._value

    async def take(self, cancelled: asyncio.Event) -> bool:
        """Wait for a slot; False (holding none) when `cancelled` is set first."""
        acquire = asyncio.ensure_future(self.slots.acquire())
        stop = asyncio.ensure_future(cancelled.wait())
        await asyncio.wait({acquire, stop}, return_when=asyncio.FIRST_COMPLETED)
        stop.cancel()
        if not acquire.done():
            acquire.cancel()
            return False
        if cancelled.is_set():
            self.slots.release()
            return False
        return True

    def submit(self, fn, *args) -> concurrent.futures.Future:
        """Run `fn(*args)` in a pool process (the caller holds a slot). A pool broken by a process
        that died (killed from outside, out of memory) is replaced for the next experiment."""
        ex = self.executor()
        try:
            return ex.submit(fn, *args)
        except concurrent.futures.process.BrokenProcessPool:
            ex.shutdown(wait=False, cancel_futures=True)
            self._executor = None
            return self.executor().submit(fn, *args)

    def close(self) -> None:
        """At the server's shutdown: nothing new starts; the batches running end (they are short)."""
        if self._executor is not None:
            self._executor.shutdown(wait=True, cancel_futures=True)
            self._executor = None


# --- trials ------------------------------------------------------------------------------------

def _int_field(req: dict, name: str, lo: int, hi: int, setting: str | None = None) -> int:
    v = req.get(name)
    if not isinstance(v, int) or isinstance(v, bool):
        raise LabError(f"{name}: a whole number is needed (got {quote(v)})")
    if v < lo:
        raise LabError(f"{name}: at least {lo} (asked for {v})")
    if v > hi:
        raise LabError(f"{name}: at most {hi:,}" + (f" ({setting})" if setting else "")
                       + f" (asked for {v:,})")
    return v


def _check_keys(req: dict, allowed: tuple[str, ...], what: str) -> None:
    extra = sorted(set(req) - set(allowed) - {"type"})
    if extra:
        raise LabError(f"{what}.{quote(extra[0])[1:-1]}: unknown field (known: {', '.join(allowed)})")


def trial_duration(scn: Scenario, req: dict, settings: Settings) -> float:
    """Each run's simulated length: `duration_ms` asked for, else the scenario's, at most
    PLAYGROUND_MAX_TRIAL_MS (a live cluster's day is cut to it; asking for more is refused)."""
    cap = settings.max_trial_ms
    d = req.get("duration_ms")
    if d is None:
        return min(scn.duration_ms, cap)
    if not isinstance(d, (int, float)) or isinstance(d, bool) or not d > 0:
        raise LabError(f"duration_ms: a positive number of ms is needed (got {quote(d)})")
    if d > cap:
        raise LabError(f"duration_ms: at most {cap:,g} ms per run (PLAYGROUND_MAX_TRIAL_MS; "
                       f"asked for {d:,g})")
    return float(d)


def parse_trials(req: dict, scn: Scenario, settings: Settings) -> tuple[dict, Grid]:
    """A `trials` request against the session's scenario: {measure, param (a dotted scenario
    field such as `config.election_timeout_ms_max`, or `nodes`, or null), values (1-4), trials,
    first_seed, duration_ms}. Returns the base scenario dict and the grid (seeds first_seed..,
    the parameter's values)."""
    _check_keys(req, ("measure", "param", "values", "trials", "first_seed", "duration_ms"), "trials")
    from engine.protocols import get_protocol

    measures = get_protocol(scn.protocol).measures
    m = req.get("measure")
    if not isinstance(m, str) or m not in measures:
        raise LabError(f"measure: {quote(m)} is not a measure of {scn.protocol} "
                       f"(known: {', '.join(sorted(measures)) or 'none'})")
    n = _int_field(req, "trials", 1, settings.max_trials, "PLAYGROUND_MAX_TRIALS")
    first = _int_field(dict(req, first_seed=req.get("first_seed", 0)), "first_seed", 0, 2**31)
    base = scn.to_dict()
    base["duration_ms"] = trial_duration(scn, req, settings)
    param, values = req.get("param"), req.get("values")
    nodes, sets = None, ()
    if param is not None:
        if not isinstance(param, str) or not param or len(param) > 80:
            raise LabError(f"param: a dotted scenario field is needed, e.g. "
                           f"config.election_timeout_ms_max (got {quote(param)})")
        if (not isinstance(values, list) or not 1 <= len(values) <= MAX_VALUES
                or not all(isinstance(v, (int, float, str, bool)) for v in values)):
            raise LabError(f"values: 1 to {MAX_VALUES} values (numbers, names or true/false) "
                           f"for {param}")
        if len({repr(v) for v in values}) != len(values):
            raise LabError("values: a value is given twice")
        if param == "nodes":
            if not all(isinstance(v, int) and not isinstance(v, bool) for v in values):
                raise LabError("values: node counts are whole numbers")
            nodes = tuple(values)
        elif param in ("seed", "duration_ms", "protocol") or param.startswith("actions"):
            raise LabError(f"param: {param} cannot be varied here (seeds are the trials; "
                           f"vary a config, network or workload field, or nodes)")
        else:
            if any(not p for p in param.split(".")):
                raise LabError(f"param: {quote(param)} has an empty part")
            sets = ((param, tuple(values)),)
    elif values not in (None, []):
        raise LabError("values: given without a param")
    grid = Grid(seeds=tuple(range(first, first + n)), nodes=nodes, sets=sets, measures=(m,))
    if len(grid) > settings.max_trials * MAX_VALUES:
        raise LabError(f"trials: at most {settings.max_trials} per value (PLAYGROUND_MAX_TRIALS)")
    try:
        validate(base, grid)
        for point in grid.points():  # each point is a scenario the browser may hold
            check_scenario(job_scenario(base, first, point, grid), settings)
    except SweepError as e:
        msg = str(e).replace("--set ", "param ").replace("--measure ", "measure ")
        raise LabError(f"param {msg}" if "=" in msg.split(":")[0] else msg) from None
    except ScenarioError as e:
        raise LabError(f"{param}: {e}" if param else str(e)) from None
    return base, grid


def point_name(point: tuple, grid: Grid) -> str:
    """A grid point as the page's series name: the parameter's value ("" without one)."""
    if grid.nodes:
        return str(point[0])
    if grid.sets:
        v = point[1]
        return v if isinstance(v, str) else orjson.dumps(v).decode()
    return ""


async def run_trials(pool: LabPool, base: dict, grid: Grid, send: Send,
                     cancelled: asyncio.Event) -> dict:
    """Run the grid through the pool, a batch per slot; each row goes to `send` as it arrives
    (`{"type": "row", ...}`) with a `progress` after each batch. Returns the `done` frame
    (cancelled or not). A batch already running when cancelled finishes in its process (it is
    short) and keeps its slot till then; nothing more is started."""
    jobs = list(grid.jobs())
    todo = [(i, s, p) for i, (s, p) in enumerate(jobs)]
    work = batches(todo, batch_size(len(todo), pool.workers))
    loop = asyncio.get_running_loop()
    rows: dict[int, dict] = {}
    inflight: set[asyncio.Future] = set()
    measure = grid.measures[0]
    t0 = time.perf_counter()
    queue = list(work)
    queued_told = False

    async def submit(batch) -> bool:
        nonlocal queued_told
        if pool.slots.locked() and not queued_told:
            queued_told = True
            await send({"type": "progress", "done": len(rows), "total": len(jobs),
                        "queued": True})
        if not await pool.take(cancelled):
            return False
        try:
            cf = pool.submit(run_batch, base, batch, grid)
        except Exception:
            pool.slots.release()  # no process took it
            raise
        pool.batches_started += 1
        cf.add_done_callback(lambda _f: loop.call_soon_threadsafe(pool.slots.release))
        inflight.add(asyncio.wrap_future(cf))
        return True

    error = None
    while (queue or inflight) and not cancelled.is_set():
        while queue and len(inflight) < pool.workers and not cancelled.is_set():
            if not await submit(queue[0]):
                break
            queue.pop(0)
        if not inflight:
            continue
        stop = asyncio.ensure_future(cancelled.wait())
        done, _ = await asyncio.wait(inflight | {stop}, return_when=asyncio.FIRST_COMPLETED)
        stop.cancel()
        for fut in done - {stop}:
            inflight.discard(fut)
            try:
                batch_rows = fut.result()
            except Exception as e:  # a run that raised: the experiment stops, named
                error = f"a run failed in its worker: {e!r}"
                cancelled.set()
                break
            for i, row in batch_rows:
                rows[i] = row
                await send(row_frame(i, row, base, grid, measure))
            await send({"type": "progress", "done": len(rows), "total": len(jobs)})
    for fut in inflight:  # cancelled: their results are not wanted (the slot frees by itself)
        fut.cancel()
    complete = len(rows) == len(jobs)
    summary = summary_of(rows, grid)
    out = {"type": "done", "kind": "trials", "cancelled": not complete, "runs": len(rows),
           "total": len(jobs), "wall_s": round(time.perf_counter() - t0, 2), "measure": measure,
           "summary": [{"point": p["point"], "runs": p["runs"], "violations": p["violations"],
                        **p["measures"][measure]} for p in summary]}
    if error:
        out["error"] = error
    return out


def summary_of(rows: dict[int, dict], grid: Grid) -> list[dict]:
    """Per grid point, the rows that came in (all of them, or a cancelled experiment's part):
    job i is point i % |points| (engine/sweep.py's seed-major order)."""
    points = grid.points()
    return summarise_points(
        [[r for i, r in sorted(rows.items()) if i % len(points) == k] for k in range(len(points))],
        grid)


def _row_point(row: dict, grid: Grid) -> tuple:
    return (row["nodes"] if grid.nodes else None, *(row[n] for n in grid.point_names()))


def row_frame(index: int, row: dict, base: dict, grid: Grid, measure: str) -> dict:
    """What the page gets per run: its place, seed, series, value, verdict and share link."""
    return {"type": "row", "index": index, "seed": row["seed"], "point": point_name(_row_point(row, grid), grid),
            "value": row.get(measure), "violations": len(row.get("violations") or []),
            "share": share_link(base, row, grid), "row": row}


# --- searches ----------------------------------------------------------------------------------

@dataclass(frozen=True)
class SearchJob:
    scenario: dict
    mutation: str
    strategies: tuple[str, ...]
    max_runs: int
    max_states: int
    budget_s: float


def parse_search(req: dict, scn: Scenario, settings: Settings) -> SearchJob:
    """A `search` request against the session's scenario: {mutation, strategy (random, explore
    or both: "random+explore"), runs, states}. Caps: PLAYGROUND_SEARCH_MAX_RUNS,
    PLAYGROUND_SEARCH_MAX_STATES, and the wall-clock PLAYGROUND_SEARCH_BUDGET_S in all."""
    from engine import search as engine_search

    _check_keys(req, ("mutation", "strategy", "runs", "states", "duration_ms"), "search")
    mutation = req.get("mutation")
    if not isinstance(mutation, str):
        raise LabError(f"mutation: the name of one of {scn.protocol}'s mutations is needed "
                       f"(got {quote(mutation)})")
    try:
        engine_search.with_mutation(scn, mutation)
    except engine_search.SearchError as e:
        raise LabError(str(e)) from None
    except ScenarioError as e:
        raise LabError(f"mutation: {e}") from None
    strategy = req.get("strategy", "random+explore")
    parts = tuple(strategy.split("+")) if isinstance(strategy, str) else ()
    if not parts or any(p not in STRATEGIES for p in parts) or len(set(parts)) != len(parts):
        raise LabError(f"strategy: {quote(strategy)} is not one of random, explore, random+explore")
    runs = _int_field(dict(req, runs=req.get("runs", settings.search_max_runs)), "runs", 1,
                      settings.search_max_runs, "PLAYGROUND_SEARCH_MAX_RUNS")
    states = _int_field(dict(req, states=req.get("states", settings.search_max_states)), "states",
                        1, settings.search_max_states, "PLAYGROUND_SEARCH_MAX_STATES")
    data = scn.to_dict()
    data["duration_ms"] = trial_duration(scn, req, settings)
    return SearchJob(data, mutation, parts, runs, states, settings.search_budget_s)


def search_child(conn, job: SearchJob, server_pid: int) -> None:
    """In the search's own process: each strategy in turn until one finds; progress (`explored`,
    counted by the engine's `stop()` calls: one per run or state) at most every
    PROGRESS_EVERY_S; then the verdict, with the counterexample's share payload."""
    from engine import search as engine_search
    from engine.scenario import parse_scenario

    from . import share
    from .searchcli import BFS_STATES

    _worker_start(server_pid)
    scn = parse_scenario(job.scenario)
    deadline = time.perf_counter() + job.budget_s
    tried = []
    for strategy in job.strategies:
        count = [0]
        last = [0.0]

        def stop(strategy=strategy, count=count, last=last) -> bool:
            count[0] += 1
            now = time.perf_counter()
            if now - last[0] >= PROGRESS_EVERY_S:
                last[0] = now
                conn.send({"type": "progress", "strategy": strategy, "explored": count[0]})
            return now > deadline

        if strategy == "random":
            r = engine_search.random_search(scn, job.mutation, runs=job.max_runs, stop=stop)
        else:
            r = engine_search.explore(scn, job.mutation, max_states=job.max_states,
                                      bfs_states=min(job.max_states // 10, BFS_STATES), stop=stop)
        out = r.as_dict()
        tried.append({"strategy": strategy, "explored": r.explored, "unit": r.unit,
                      "stopped": time.perf_counter() > deadline})
        if r.found is not None:
            out["share"] = share.encode(parse_scenario(r.found.scenario), r.found.t)
            out["tried"] = tried
            conn.send({"type": "result", **out})
            return
        if time.perf_counter() > deadline:
            break
    conn.send({"type": "result", "found": False, "mutation": job.mutation, "tried": tried})


async def run_search(pool: LabPool, job: SearchJob, send: Send, cancelled: asyncio.Event,
                     settings: Settings) -> dict:
    """One search in a process of its own holding one of the pool's slots; its messages go to
    `send`; cancelled, the process is killed. Returns the `done` frame."""
    if pool.slots.locked():
        await send({"type": "progress", "kind": "search", "queued": True})
    if not await pool.take(cancelled):
        return {"type": "done", "kind": "search", "cancelled": True}
    t0 = time.perf_counter()
    parent, child = _ctx().Pipe(duplex=False)
    proc = _ctx().Process(target=search_child, args=(child, job, os.getpid()),
                          daemon=True)
    result: dict[str, Any] | None = None
    try:
        proc.start()
        child.close()
        # the wall-clock cap, with room for the process to start and the last run to end
        hard = t0 + job.budget_s + settings.search_grace_s
        while result is None and not cancelled.is_set():
            ready = await asyncio.to_thread(parent.poll, 0.2)
            if ready:
                try:
                    msg = parent.recv()
                except EOFError:
                    break
                if msg["type"] == "result":
                    result = msg
                else:
                    await send({**msg, "kind": "search", "elapsed_s": round(time.perf_counter() - t0, 1)})
            elif not proc.is_alive() or time.perf_counter() > hard:
                break
    finally:
        if proc.is_alive():
            proc.kill()
        await asyncio.to_thread(proc.join, 5)
        parent.close()
        pool.slots.release()
    out = {"type": "done", "kind": "search", "cancelled": cancelled.is_set() and result is None,
           "elapsed_s": round(time.perf_counter() - t0, 2)}
    if result is None and not out["cancelled"]:
        out["error"] = "the search process ended without a verdict"
    if result is not None:
        result.pop("type", None)
        out.update(result)
    return out


__all__ = ["LabPool", "LabError", "parse_trials", "run_trials", "parse_search", "run_search",
           "SearchJob"]
