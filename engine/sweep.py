"""Sweeps: one scenario run over a grid of seeds, node counts and scenario values
(`playground sweep`). The pure parts live here: reading the grid, the jobs in their fixed order,
one job to one result row, and the summary per grid point. Worker processes, Dask and files are
app/sweep.py's business.

A grid is seeds x node counts x the values of each `--set NAME=V1,V2` (a dotted name into the
scenario dict, e.g. `config.election_timeout_ms_max`). The jobs run in *seed order*: for each
seed, every grid point (node counts first, then each `--set` in the order given). A row is a pure
function of the scenario and its job, so the table is the same whoever runs which job, and a row's
place is its job's index (docs/sweep.md lists the columns).
"""

from __future__ import annotations

import copy
import itertools
from dataclasses import dataclass
from typing import Any, Iterator

import orjson

from .protocols import get_protocol
from .run import run_scenario
from .scenario import Scenario, ScenarioError, parse_scenario
from .stats import percentile

MAX_RUNS = 10_000_000  # a grid larger than this is almost certainly a typo (0..99999999)
WALL_CLOCK_FIELDS = ("wall_s", "speedup")  # left out of rows: they differ from run to run
QUANTILES = (("median", 50), ("p90", 90), ("p99", 99))


class SweepError(ValueError):
    """Bad sweep input; the message names the option or field."""


# --- reading the grid --------------------------------------------------------------------------

def _int(text: str, what: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise SweepError(f"{what}: {text!r} is not a whole number") from None


def parse_int_list(text: str, what: str, lo: int = 0) -> list[int]:
    """`0..9999` (both ends included), `7`, or a comma-separated list of those."""
    out: list[int] = []
    for part in text.split(","):
        part = part.strip()
        if not part:
            raise SweepError(f"{what}: empty item in {text!r}")
        if ".." in part:
            a, _, b = part.partition("..")
            first, last = _int(a, what), _int(b, what)
            if last < first:
                raise SweepError(f"{what}: {part!r} is an empty range (write FIRST..LAST, FIRST <= LAST)")
            if last - first + 1 > MAX_RUNS:
                raise SweepError(f"{what}: {part!r} has more than {MAX_RUNS:,} values")
            out.extend(range(first, last + 1))
        else:
            out.append(_int(part, what))
        if out and min(out) < lo:
            raise SweepError(f"{what}: {min(out)} is below {lo}")
    if len(set(out)) != len(out):
        dup = next(x for x in out if out.count(x) > 1)
        raise SweepError(f"{what}: {dup} is given twice")
    return out


def parse_set(text: str) -> tuple[str, list]:
    """`config.election_timeout_ms_max=200,300` -> ("config.election_timeout_ms_max", [200, 300]).
    Each value is read as JSON (numbers, true/false, null), else taken as a string."""
    name, eq, values = text.partition("=")
    name = name.strip()
    if not eq or not name or not values.strip():
        raise SweepError(f"--set {text!r}: write NAME=VALUE[,VALUE...], e.g. "
                         f"config.election_timeout_ms_max=200,300")
    if name in ("seed", "nodes"):
        raise SweepError(f"--set {name}: use --{name}s" if name == "seed" else f"--set {name}: use --nodes")
    if any(not p for p in name.split(".")):
        raise SweepError(f"--set {name}: an empty part in the dotted name")
    out = []
    for v in values.split(","):
        v = v.strip()
        try:
            out.append(orjson.loads(v))
        except orjson.JSONDecodeError:
            out.append(v)
    return name, out


def put(data: dict, dotted: str, value: Any) -> None:
    """Set `value` at the dotted path in a scenario dict, making the dicts on the way if absent."""
    *path, last = dotted.split(".")
    d = data
    for i, key in enumerate(path):
        nxt = d.get(key)
        if nxt is None:
            nxt = d[key] = {}
        elif not isinstance(nxt, dict):
            raise SweepError(f"--set {dotted}: {'.'.join(path[:i + 1])} is not an object")
        d = nxt
    d[last] = value


@dataclass(frozen=True)
class Grid:
    """What to run: seeds x node counts x each `--set`'s values; the measures to take."""

    seeds: tuple[int, ...]
    nodes: tuple[int, ...] | None = None  # None: the scenario's own
    sets: tuple[tuple[str, tuple], ...] = ()
    measures: tuple[str, ...] = ()

    def points(self) -> list[tuple]:
        """The grid points, each (nodes or None, value of each --set), in their fixed order."""
        return list(itertools.product(self.nodes or (None,), *(vals for _, vals in self.sets)))

    def jobs(self) -> Iterator[tuple[int, tuple]]:
        """(seed, point) in seed order: for each seed, every grid point."""
        points = self.points()
        for seed in self.seeds:
            for p in points:
                yield seed, p

    def __len__(self) -> int:
        return len(self.seeds) * len(self.points())

    def point_names(self) -> list[str]:
        return [name for name, _ in self.sets]


def job_scenario(base: dict, seed: int, point: tuple, grid: Grid) -> Scenario:
    """The scenario of one job: the base dict with the seed, node count and --set values in."""
    data = copy.deepcopy(base)
    data["seed"] = seed
    if point[0] is not None:
        data["nodes"] = point[0]
    for (name, _), v in zip(grid.sets, point[1:]):
        put(data, name, v)
    return parse_scenario(data)


def validate(base: dict, grid: Grid) -> Scenario:
    """Check the grid against the scenario before anything runs: every grid point makes a valid
    scenario (the first seed's; the seed changes nothing else), every measure exists. Returns the
    base scenario. Raises SweepError naming the option and field."""
    try:
        scn = parse_scenario(base)
    except ScenarioError as e:
        raise SweepError(f"scenario: {e}") from None
    _check_measures(scn, grid)
    if len(grid) > MAX_RUNS:
        raise SweepError(f"the grid has {len(grid):,} runs, more than {MAX_RUNS:,}")
    if not grid.seeds:
        raise SweepError("--seeds: no seeds")
    for point in grid.points():
        try:
            job = job_scenario(base, grid.seeds[0], point, grid)
        except ScenarioError as e:
            raise SweepError(f"{describe(point, grid) or 'scenario'}: {e}") from None
        _check_measures(job, grid)  # a --set may change the protocol
    return scn


def _check_measures(scn: Scenario, grid: Grid) -> None:
    known = get_protocol(scn.protocol).measures
    for name in grid.measures:
        if name not in known:
            listed = ", ".join(sorted(known)) or "none yet"
            raise SweepError(f"--measure {name}: unknown measure for {scn.protocol} (known: {listed})")


# --- one run, one row --------------------------------------------------------------------------

def run_job(base: dict, seed: int, point: tuple, grid: Grid) -> dict:
    """Run one job; its row: `seed`, each --set value under its dotted name, `nodes`, the run
    summary's fields (without the wall-clock ones), then each measure by name."""
    scn = job_scenario(base, seed, point, grid)
    spec = get_protocol(scn.protocol)
    summary = run_scenario(scn, measures={m: spec.measures[m] for m in grid.measures})
    values = summary.pop("measures")
    row: dict[str, Any] = {"seed": seed}
    for (name, _), v in zip(grid.sets, point[1:]):
        row[name] = v
    row["nodes"] = scn.nodes
    for k, v in summary.items():
        if k not in row and k not in WALL_CLOCK_FIELDS and k != "seed":
            row[k] = v
    row.update(values)
    return row


def run_batch(base: dict, jobs: list[tuple[int, int, tuple]], grid: Grid) -> list[tuple[int, dict]]:
    """Several jobs (index, seed, point) in one go (one task for a worker): [(index, row)]."""
    return [(i, run_job(base, seed, point, grid)) for i, seed, point in jobs]


def failed(row: dict) -> bool:
    """A run that broke safety: a checker's violation or a non-linearizable history."""
    return bool(row.get("violations")) or row.get("linearizable") is False


def first_failure_ms(row: dict) -> float:
    """When the run first went wrong (its first violation; the end for a history found
    non-linearizable only afterwards)."""
    vs = row.get("violations") or []
    return vs[0]["t"] if vs else row.get("sim_ms", 0.0)


def row_key(row: dict, grid: Grid) -> tuple:
    """What identifies a row's job (checked when a sweep resumes from its file)."""
    return (row.get("seed"), *(row.get(n) for n in grid.point_names()),
            row.get("nodes") if grid.nodes else None)


def job_key(seed: int, point: tuple, grid: Grid) -> tuple:
    return (seed, *point[1:], point[0])


# --- the summary -------------------------------------------------------------------------------

def describe(point: tuple, grid: Grid) -> str:
    """`nodes=5 config.election_timeout_ms_max=300` (empty for a grid of seeds only)."""
    parts = [] if point[0] is None else [f"nodes={point[0]}"]
    parts += [f"{name}={orjson.dumps(v).decode() if not isinstance(v, str) else v}"
              for (name, _), v in zip(grid.sets, point[1:])]
    return " ".join(parts)


def stats(values: list) -> dict:
    """count (values present), missing (None: the run never got there), median, p90, p99, max."""
    xs = sorted(v for v in values if v is not None)
    out: dict[str, Any] = {"count": len(xs), "missing": len(values) - len(xs)}
    for name, q in QUANTILES:
        p = percentile(xs, q)
        out[name] = None if p is None else round(p, 3)
    out["max"] = xs[-1] if xs else None
    return out


def summarise(rows: list[dict], grid: Grid) -> list[dict]:
    """Per grid point, in grid order: `point` (its description), `runs`, `violations` (runs that
    failed), and per measure its `stats`."""
    n = len(grid.points())
    # jobs are seed-major: job i is point i % |points|
    return summarise_points([rows[k::n] for k in range(n)], grid)


def summarise_points(by_point: list[list[dict]], grid: Grid) -> list[dict]:
    """`summarise` of rows already grouped by grid point (in grid order; a group may be short)."""
    return [{"point": describe(point, grid), "runs": len(rs),
             "violations": sum(1 for r in rs if failed(r)),
             "measures": {m: stats([r.get(m) for r in rs]) for m in grid.measures}}
            for point, rs in zip(grid.points(), by_point)]


__all__ = ["Grid", "SweepError", "parse_int_list", "parse_set", "validate", "run_job", "run_batch",
           "summarise", "summarise_points", "failed", "first_failure_ms", "job_scenario", "describe", "row_key",
           "job_key", "stats"]
