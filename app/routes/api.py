"""JSON and NDJSON endpoints: health, lessons, trace export (a replay) and import."""

from __future__ import annotations

from typing import Iterator

import orjson
from fastapi import APIRouter, Depends, HTTPException, Query, Request
from fastapi.responses import JSONResponse, StreamingResponse

from engine.scenario import ScenarioError
from engine.sim import Simulation
from engine.trace import TraceError, header, read_trace, scenario_from_header

from .. import share
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


def _trace_lines(payload: str, max_chars: int, max_ms: float) -> tuple[str, Iterator[bytes]]:
    try:
        sc, t, _lesson = share.decode(payload, max_chars)
    except ScenarioError as e:
        raise HTTPException(400, str(e)) from None
    if t > max_ms:
        raise HTTPException(400, f"t: at most {max_ms:g} ms can be exported")

    def lines() -> Iterator[bytes]:
        sim = Simulation(sc)
        buf: list[dict] = []
        sim.subscribe(buf.append)
        yield orjson.dumps(header(sc)) + b"\n"
        step = 1000.0
        now = 0.0
        while True:
            now = min(t, now + step)
            sim.run_until(now)
            if buf:
                yield b"".join(orjson.dumps(r) + b"\n" for r in buf)
                buf.clear()
            if now >= t:
                break
        yield orjson.dumps(sim.end_record()) + b"\n"  # where the run was cut: an import resumes there

    return f"playground-seed{sc.seed}-t{int(t)}.ndjson", lines()


@router.get("/api/trace")
def export_trace(share_payload: str = Query(..., alias="share"), settings=Depends(get_settings)):
    """The documented NDJSON trace of the run a share payload describes, up to its moment."""
    name, body = _trace_lines(share_payload, settings.max_share_chars, settings.max_replay_ms)
    return StreamingResponse(body, media_type="application/x-ndjson",
                             headers={"Content-Disposition": f'attachment; filename="{name}"'})


@router.post("/api/import")
async def import_trace(request: Request, settings=Depends(get_settings)):
    """Read an NDJSON trace (the request body) and answer the share payload that replays it, up to
    the trace's `end` record (or its last record, for traces written without one)."""
    body = b""
    async for chunk in request.stream():
        body += chunk
        if len(body) > settings.max_import_bytes:
            return JSONResponse({"error": f"trace too large (the limit is {settings.max_import_bytes} bytes)"},
                                status_code=413)
    try:
        head, records = read_trace(body.splitlines())
        sc = scenario_from_header(head)
        count, last_t, end_t = 0, 0.0, None
        for rec in records:
            if rec["type"] == "end":  # the instant the trace was cut: resume exactly there
                end_t = float(rec["t"])
                continue
            count += 1
            last_t = max(last_t, float(rec["t"]))
    except (TraceError, ScenarioError, TypeError, ValueError) as e:
        return JSONResponse({"error": str(e)}, status_code=400)
    if sc.nodes > settings.max_nodes:
        return JSONResponse({"error": f"scenario.nodes: at most {settings.max_nodes} nodes per session"},
                            status_code=400)
    # Traces written before the `end` record existed resume at their last record instead.
    t = end_t if end_t is not None else last_t
    return {"share": share.encode(sc, t), "records": count, "t": t, "seed": sc.seed,
            "nodes": sc.nodes, "ended": end_t is not None}
