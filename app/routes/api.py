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

from engine.scenario import ScenarioError
from engine.sim import Simulation
from engine.trace import TraceError, header, read_trace, scenario_from_header

from .. import share
from ..limits import check_raw_scenario, check_replay, check_scenario, decode_share
from .deps import get_lessons, get_sessions, get_settings

router = APIRouter()


@router.get("/healthz")
def healthz(sessions=Depends(get_sessions)):
    return {"ok": True, "sessions": len(sessions.sessions)}


@router.get("/api/stats")
def stats(reset: bool = False, sessions=Depends(get_sessions)):
    """Server-side frame lateness and full GC pauses (benchmarks only: PLAYGROUND_BENCH_STATS=1)."""
    xs = sessions.lateness_s
    if xs is None:
        raise HTTPException(404, "stats are off (set PLAYGROUND_BENCH_STATS=1)")
    ys = sorted(xs)
    gcs = list(sessions.gc_pauses_s)
    if reset:
        xs.clear()
        sessions.gc_pauses_s.clear()

    def pct(p):
        return round(ys[min(len(ys) - 1, int(p / 100 * (len(ys) - 1)))] * 1000, 2) if ys else None

    return {"frames": len(ys), "lateness_ms": {"p50": pct(50), "p90": pct(90), "p99": pct(99), "max": pct(100)},
            "gc_full_collections": {"count": len(gcs), "max_ms": round(max(gcs) * 1000, 1) if gcs else None}}


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


def _trace_lines(payload: str, settings, gate) -> tuple[str, AsyncIterator[bytes]]:
    try:
        sc, t, _lesson = decode_share(payload, settings)
        check_scenario(sc, settings)
        check_replay(sc, t, settings, where="share.t")
    except ScenarioError as e:
        raise HTTPException(400, str(e)) from None
    slice_s = settings.replay_slice_ms / 1000
    turn = f"export-{next(_export_ids)}"

    async def lines() -> AsyncIterator[bytes]:
        sim = Simulation(sc)
        buf: list[dict] = []
        sim.subscribe(buf.append)
        yield orjson.dumps(header(sc)) + b"\n"
        try:
            while True:
                while gate.enter(turn):  # a replay's turn, like a session's
                    await asyncio.sleep(settings.frame_interval_ms / 1000)
                done = run_slice(sim, t, time.perf_counter() + slice_s)
                if buf:
                    chunk = b"".join(orjson.dumps(r) + b"\n" for r in buf)
                    buf.clear()
                    yield chunk
                if done:
                    break
                await asyncio.sleep(0)
        finally:
            gate.leave(turn)
        yield orjson.dumps(sim.end_record()) + b"\n"  # where the run was cut: an import resumes there

    return f"playground-seed{sc.seed}-t{int(t)}.ndjson", lines()


@router.get("/api/trace")
async def export_trace(share_payload: str = Query(..., alias="share"), settings=Depends(get_settings),
                 sessions=Depends(get_sessions)):
    """The documented NDJSON trace of the run a share payload describes, up to its moment."""
    name, body = _trace_lines(share_payload, settings, sessions.replay_gate)
    return StreamingResponse(body, media_type="application/x-ndjson",
                             headers={"Content-Disposition": f'attachment; filename="{name}"'})


async def _read_records(records, slice_s: float) -> tuple[int, float, float | None]:
    """Count the records (each line is parsed and checked), a slice of CPU at a time."""
    count, last_t, end_t = 0, 0.0, None
    deadline = time.perf_counter() + slice_s
    for rec in records:
        if rec["type"] == "end":  # the instant the trace was cut: resume exactly there
            end_t = float(rec["t"])
            continue
        count += 1
        last_t = max(last_t, float(rec["t"]))
        if not count % 256 and time.perf_counter() >= deadline:
            await asyncio.sleep(0)
            deadline = time.perf_counter() + slice_s
    return count, last_t, end_t


@router.post("/api/import")
async def import_trace(request: Request, settings=Depends(get_settings)):
    """Read an NDJSON trace (the request body) and answer the share payload that replays it, up to
    the trace's `end` record (or its last record, for traces written without one)."""
    limit = settings.max_import_bytes
    if int(request.headers.get("content-length") or 0) > limit:
        return JSONResponse({"error": f"trace too large (the limit is {limit} bytes)"}, status_code=413)
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > limit:
            return JSONResponse({"error": f"trace too large (the limit is {limit} bytes)"},
                                status_code=413)
    try:
        head, records = read_trace(bytes(body).split(b"\n") if body.strip() else [])
        raw = head.get("scenario")
        check_raw_scenario(raw, settings, "line 1: header.scenario")  # before parsing it
        sc = scenario_from_header(head)
        check_scenario(sc, settings)
        count, last_t, end_t = await _read_records(records, settings.replay_slice_ms / 1000)
        # Traces written before the `end` record existed resume at their last record instead.
        t = end_t if end_t is not None else last_t
        check_replay(sc, t, settings, where="end.t")
    except (TraceError, ScenarioError, TypeError, ValueError) as e:
        return JSONResponse({"error": str(e)}, status_code=400)
    return {"share": share.encode(sc, t), "records": count, "t": t, "seed": sc.seed,
            "nodes": sc.nodes, "ended": end_t is not None}
