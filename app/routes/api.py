"""JSON and NDJSON endpoints: health, lessons, trace export (a replay) and import.

Both trace endpoints do CPU work proportional to the trace, so both do it in slices of at most
`replay_slice_ms`, yielding to the event loop between slices (every session shares it); exports
also take turns with the sessions' replays (`ReplayGate`).
"""

from __future__ import annotations

import asyncio
import itertools
import time
from typing import AsyncIterator

import orjson
from fastapi import APIRouter, Depends, HTTPException, Query, Request
from fastapi.responses import JSONResponse, StreamingResponse
from starlette.background import BackgroundTask

from engine.export import CONTENT, EXPORTERS, exporter
from engine.scenario import ScenarioError
from engine.sim import Simulation
from engine.trace import Tap, TraceError, header, parse_record, read_trace, scenario_from_header

from .. import share
from ..limits import check_raw_scenario, check_replay, check_scenario, decode_share
from .deps import get_lessons, get_sessions, get_settings

router = APIRouter()


@router.get("/healthz")
async def healthz(request: Request, sessions=Depends(get_sessions)):
    """This worker is up; `broker` says whether the broker (Redis) is reachable from it."""
    rooms = request.app.state.rooms
    return {"ok": True, "sessions": len(sessions.sessions), "broker": await rooms.broker.health(),
            "rooms": len(rooms.hosted), "viewers": rooms.local_viewers(), "worker": rooms.worker}


@router.get("/api/stats")
async def stats(request: Request, reset: bool = False, sessions=Depends(get_sessions)):
    """Server-side frame lateness, full GC pauses and the recipes' batches (round trips to the
    broker, and recipes written in them) (benchmarks only: PLAYGROUND_BENCH_STATS=1). `reset`:
    start over, answering the empty figures (a benchmark's start of measurement: summing up the
    warm-up's figures, sorting some 10^5 of them, held the worker's loop for 100 ms and more;
    `async`, so no thread holds the interpreter while the loop waits for it)."""
    xs = sessions.lateness_s
    if xs is None:
        raise HTTPException(404, "stats are off (set PLAYGROUND_BENCH_STATS=1)")
    w = request.app.state.rooms.recipes
    if reset:
        xs.clear()
        sessions.gc_pauses_s.clear()
        sessions.click_parts_s.clear()
        sessions.loop_lag_s.clear()
        w.batches = w.keys = 0
    ys = sorted(xs)
    gcs = list(sessions.gc_pauses_s)
    batches = {"batches": w.batches, "recipes": w.keys}
    parts = list(zip(*sessions.click_parts_s)) or [(), (), ()]
    lag = sorted(sessions.loop_lag_s)

    def pct(p, ys=ys):
        return round(ys[min(len(ys) - 1, int(p / 100 * (len(ys) - 1)))] * 1000, 2) if ys else None

    def dist(xs):
        xs = sorted(xs)
        return {"p50": pct(50, xs), "p90": pct(90, xs), "p99": pct(99, xs), "max": pct(100, xs)}

    return {"frames": len(ys), "lateness_ms": dist(ys),
            # A click on this worker: handled -> its frame's relay begins (the runner's wake-up),
            # the relay (the recipe's write to the broker), the send to the socket.
            "clicks": len(parts[0]), "click_to_relay_ms": dist(parts[0]),
            "click_relay_ms": dist(parts[1]), "click_send_ms": dist(parts[2]),
            "loop_lag_ms": dist(lag),
            "gc_full_collections": {"count": len(gcs), "max_ms": round(max(gcs) * 1000, 1) if gcs else None},
            "recipe_writes": batches}


@router.get("/api/lessons")
def lessons_list(request: Request, lessons=Depends(get_lessons)):
    return {"lessons": [{"name": lf.name, "title": lf.title, "notes": lf.notes, "suggest": lf.suggest}
                        for lf in lessons.values()],
            "skipped": request.app.state.lesson_errors}


def run_slice(sim: Simulation, target_ms: float, deadline: float) -> bool:
    """Run `sim` towards `target_ms` until `deadline` (perf_counter); True when it got there."""
    while True:
        nxt = sim.next_event_ms()
        if nxt is None or nxt > target_ms:
            sim.run_until(target_ms)
            return True
        sim.run_until(nxt)
        if time.perf_counter() >= deadline:
            return False


_export_ids = itertools.count(1)


class Slots:
    """A cap on concurrent requests of one kind (exports, imports): `take` answers a release
    function (safe to call twice), or None when all slots are busy."""

    def __init__(self, n: int):
        self.n = n
        self.busy = 0

    def take(self):
        if self.busy >= self.n:
            return None
        self.busy += 1
        done = False

        def release() -> None:
            nonlocal done
            if not done:
                done = True
                self.busy -= 1

        return release


def _slots(request: Request, kind: str, n: int) -> Slots:
    state = request.app.state
    slots = getattr(state, f"{kind}_slots", None)
    if slots is None:
        slots = Slots(n)
        setattr(state, f"{kind}_slots", slots)
    return slots


def _busy(kind: str, n: int) -> JSONResponse:
    return JSONResponse({"error": f"the server is busy: {n} trace {kind}s are running, the limit; "
                                  "try again in a moment"}, status_code=503,
                        headers={"Retry-After": "2"})


def _trace_lines(payload: str, settings, gate, release,
                 fmt: str = "ndjson") -> tuple[str, AsyncIterator[bytes]]:
    """The run's records as NDJSON, or through one of engine/export.py's exporters."""
    try:
        sc, t, _lesson = decode_share(payload, settings)
        check_scenario(sc, settings)
        check_replay(sc, t, settings, where="share.t")
    except ScenarioError as e:
        release()
        raise HTTPException(400, str(e)) from None
    slice_s = settings.replay_slice_ms / 1000
    turn = f"export-{next(_export_ids)}"
    head = header(sc)
    if fmt == "ndjson":
        def encode(recs: list[dict]) -> bytes:
            return b"".join(orjson.dumps(r) + b"\n" for r in recs)
        start, finish = orjson.dumps(head) + b"\n", lambda: b""
    else:
        x = exporter(fmt, head)
        def encode(recs: list[dict]) -> bytes:
            return "".join(x.feed(r) for r in recs).encode()
        start, finish = x.start().encode(), lambda: x.end().encode()

    async def lines() -> AsyncIterator[bytes]:
        nonlocal t
        try:
            sim = Simulation(sc)
            buf: list[dict] = []
            tap = Tap(sim, buf.append)  # with the records observers write (metrics)
            sim.subscribe(tap)
            yield start
            while True:
                while gate.enter(turn):  # a replay's turn, like a session's
                    await asyncio.sleep(settings.frame_interval_ms / 1000)
                t0 = time.perf_counter()
                try:
                    done = run_slice(sim, t, t0 + slice_s)
                finally:
                    # The slot is held for the slice only: a slow reader must not keep it (and so
                    # every queued session's replay waiting) while its bytes trickle out.
                    gate.charge(turn, time.perf_counter() - t0)
                    gate.release(turn)
                if sim.events > settings.max_replay_events and not done:
                    # Over the work a replay may take: the trace ends here, honestly cut.
                    t = sim.now_ms
                    done = True
                if done:
                    tap.flush()
                if buf:
                    chunk = encode(buf)
                    buf.clear()
                    if chunk:
                        yield chunk
                if done:
                    break
                await asyncio.sleep(0)
            # where the run was cut: an import resumes there
            yield encode([sim.end_record()]) + finish()
        finally:
            gate.leave(turn)
            release()

    ext = CONTENT[fmt][1] if fmt in CONTENT else "ndjson"
    return f"playground-seed{sc.seed}-t{int(t)}.{ext}", lines()


@router.get("/api/trace")
async def export_trace(request: Request, share_payload: str = Query(..., alias="share"),
                       fmt: str = Query("ndjson", alias="format"),
                       settings=Depends(get_settings), sessions=Depends(get_sessions)):
    """The documented NDJSON trace of the run a share payload describes, up to its moment; with
    `format=shiviz|jepsen|porcupine`, the same run in that tool's format (docs/exports.md).
    At most `max_concurrent_exports` at once (503 beyond)."""
    if fmt != "ndjson" and fmt not in EXPORTERS:
        raise HTTPException(400, f"format: {fmt[:40]!r} is not one of "
                                 f"{', '.join(['ndjson', *sorted(EXPORTERS)])}")
    release = _slots(request, "export", settings.max_concurrent_exports).take()
    if release is None:
        return _busy("export", settings.max_concurrent_exports)
    name, body = _trace_lines(share_payload, settings, sessions.replay_gate, release, fmt)
    # The body releases its slot when it ends; the background task covers a body never started.
    media = CONTENT[fmt][0] if fmt in CONTENT else "application/x-ndjson"
    return StreamingResponse(body, media_type=media, background=BackgroundTask(release),
                             headers={"Content-Disposition": f'attachment; filename="{name}"'})


async def _read_records(lines: list[bytes], slice_s: float) -> tuple[int, float, float | None]:
    """Count the records after the header (each line is parsed and checked, and named when it is
    wrong), a slice of CPU at a time."""
    count, last_t, end_t = 0, 0.0, None
    deadline = time.perf_counter() + slice_s
    for n, line in enumerate(lines, start=2):
        if not line.strip():
            continue
        rec = parse_record(line, n)
        t = float(rec["t"])
        if rec["type"] == "end":  # the instant the trace was cut: resume exactly there
            end_t = t
            continue
        count += 1
        last_t = max(last_t, t)
        if not count % 256 and time.perf_counter() >= deadline:
            await asyncio.sleep(0)
            deadline = time.perf_counter() + slice_s
    return count, last_t, end_t


@router.post("/api/import")
async def import_trace(request: Request, settings=Depends(get_settings)):
    """Read an NDJSON trace (the request body) and answer the share payload that replays it, up to
    the trace's `end` record (or its last record, for traces written without one). At most
    `max_concurrent_imports` at once (503 beyond)."""
    release = _slots(request, "import", settings.max_concurrent_imports).take()
    if release is None:
        return _busy("import", settings.max_concurrent_imports)
    try:
        return await _import(request, settings)
    finally:
        release()


async def _import(request: Request, settings):
    limit = settings.max_import_bytes
    if int(request.headers.get("content-length") or 0) > limit:
        return JSONResponse({"error": f"trace too large (the limit is {limit} bytes)"}, status_code=413)
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > limit:
            return JSONResponse({"error": f"trace too large (the limit is {limit} bytes)"},
                                status_code=413)
    head_cap = settings.max_import_header_bytes
    first_nl = body.find(b"\n")
    head_len = len(body) if first_nl < 0 else first_nl
    if head_len > head_cap:
        return JSONResponse({"error": f"line 1: the header is {head_len} bytes, the limit is "
                                      f"{head_cap}"}, status_code=400)
    try:
        lines = bytes(body).split(b"\n") if body.strip() else []
        head, _records = read_trace(lines[:1])
        raw = head.get("scenario")
        check_raw_scenario(raw, settings, "line 1: header.scenario")  # before parsing it
        sc = scenario_from_header(head)
        check_scenario(sc, settings)
        count, last_t, end_t = await _read_records(lines[1:], settings.replay_slice_ms / 1000)
        # Traces written before the `end` record existed resume at their last record instead.
        t = end_t if end_t is not None else last_t
        check_replay(sc, t, settings, where="end.t")
        payload = share.encode(sc, t)
    except (TraceError, ScenarioError, TypeError, ValueError) as e:
        return JSONResponse({"error": str(e)}, status_code=400)
    if len(payload) > settings.max_share_chars:
        return JSONResponse({"error": f"the trace is too large to load in the browser (its share "
                                      f"link would be {len(payload)} characters, the limit is "
                                      f"{settings.max_share_chars}; fewer actions would fit)"},
                            status_code=400)
    return {"share": payload, "records": count, "t": t, "seed": sc.seed,
            "nodes": sc.nodes, "ended": end_t is not None}
