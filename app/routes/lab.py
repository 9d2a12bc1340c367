"""The lab socket `/ws/lab`: the Experiments tab's trials and searches on the page's session's
scenario, streamed back (docs/ws-protocol.md, "The lab socket"). The session itself is only read:
an experiment never changes what the page shows until the page loads a run."""

from __future__ import annotations

import asyncio
import logging

import orjson
from fastapi import APIRouter, WebSocket, WebSocketDisconnect
from starlette.websockets import WebSocketState

from engine.protocols import get_protocol

from ..lab import LabError, parse_search, point_name, parse_trials, run_search, run_trials, trial_duration
from ..limits import quote
from ..session import TokenBucket
from ..wire import BadInput, frame_bytes, parse_attach
from .ws import _GONE_MESSAGE, GONE, REFUSED, _refuse, origin_allowed

router = APIRouter()
log = logging.getLogger("playground.lab")
KINDS = ("describe", "trials", "search", "cancel")


def describe(session, settings) -> dict:
    """What the form offers for the session's scenario: measures, mutations, parameters, caps."""
    scn = session.origin
    spec = get_protocol(scn.protocol)
    data = scn.to_dict()
    params = ["nodes"]
    for part in ("config", "network", "workload"):
        for k, v in sorted((data.get(part) or {}).items()):
            if isinstance(v, (int, float)) and not isinstance(v, bool):
                params.append(f"{part}.{k}")
    return {"type": "ready", "protocol": scn.protocol, "session": session.id,
            "measures": [{"name": n, "unit": getattr(m, "unit", ""), "doc": getattr(m, "doc", "")}
                         for n, m in sorted(spec.measures.items())],
            "mutations": dict(spec.mutations), "params": params,
            "values": {p: _get(data, p) for p in params},
            "duration_ms": trial_duration(scn, {}, settings),
            "limits": {"max_trials": settings.max_trials, "max_values": 4,
                       "max_trial_ms": settings.max_trial_ms, "workers": settings.lab_workers,
                       "search_max_runs": settings.search_max_runs,
                       "search_max_states": settings.search_max_states,
                       "search_budget_s": settings.search_budget_s}}


def _get(data: dict, dotted: str):
    for k in dotted.split("."):
        if not isinstance(data, dict):
            return None
        data = data.get(k)
    return data


@router.websocket("/ws/lab")
async def lab(websocket: WebSocket):
    app = websocket.app
    settings = app.state.settings
    await websocket.accept()
    if not origin_allowed(websocket.headers.get("origin"), websocket.headers.get("host"), settings):
        return await _refuse(websocket, "origin: pages from other sites may not open the lab "
                             "socket (allowed: this server's own pages and "
                             "PLAYGROUND_ALLOWED_ORIGINS)", REFUSED)
    try:
        first = await asyncio.wait_for(websocket.receive(), settings.attach_timeout_s)
    except asyncio.TimeoutError:
        return await _refuse(websocket, f"attach: no attach frame within "
                             f"{settings.attach_timeout_s:g} s", REFUSED)
    if first["type"] == "websocket.disconnect":
        return
    try:
        a = parse_attach(first.get("text") or first.get("bytes") or b"", settings.max_frame_bytes)
    except BadInput as e:
        return await _refuse(websocket, str(e), REFUSED)
    session = app.state.sessions.get(a.session)
    if session is None:
        return await _refuse(websocket, _GONE_MESSAGE, GONE, gone=True)
    if not session.check_secret(a.secret):
        return await _refuse(websocket, "attach.secret: not this session's secret", REFUSED)

    pool = app.state.lab
    lock = asyncio.Lock()  # one frame on the wire at a time (the job's task and this loop)

    async def send(frame: dict) -> None:
        async with lock:
            await websocket.send_text(orjson.dumps(frame).decode())

    job: asyncio.Task | None = None
    cancelled = asyncio.Event()
    bucket = TokenBucket(settings.ws_rate_per_s, settings.ws_burst)  # as /ws, per connection

    async def run(kind: str, req: dict, cancelled: asyncio.Event) -> None:
        pool.running += 1
        try:
            scn = session.origin
            if kind == "trials":
                base, grid = parse_trials(req, scn, settings)
                await send({"type": "started", "kind": "trials", "total": len(grid),
                            "measure": grid.measures[0], "param": req.get("param"),
                            "points": [point_name(p, grid) for p in grid.points()],
                            "duration_ms": base["duration_ms"]})
                done = await run_trials(pool, base, grid, send, cancelled)
            else:
                sj = parse_search(req, scn, settings)
                await send({"type": "started", "kind": "search", "mutation": sj.mutation,
                            "strategies": list(sj.strategies), "runs": sj.max_runs,
                            "states": sj.max_states, "budget_s": sj.budget_s,
                            "duration_ms": sj.scenario["duration_ms"]})
                done = await run_search(pool, sj, send, cancelled, settings)
            await send(done)
        except LabError as e:
            await send({"type": "error", "message": f"{kind}.{e}"})
        except Exception as e:
            if _gone(websocket):
                return  # the page went away (sending failed): nothing to tell
            log.exception("lab %s", kind)  # a bug: told, logged, the socket stays
            try:
                await send({"type": "error", "message": f"internal error in {kind}: {e!r}"})
            except Exception:
                pass
        finally:
            pool.running -= 1

    try:
        await send(describe(session, settings))
        while True:
            msg = await websocket.receive()
            if msg["type"] == "websocket.disconnect":
                break
            text = msg.get("text") or msg.get("bytes") or b""
            if not bucket.take():
                if not bucket.told:
                    bucket.told = True
                    await send({"type": "error", "message": f"rate: more than "
                                f"{settings.ws_rate_per_s:g} frames per second; frames dropped"})
                continue
            bucket.told = False
            try:
                req = _parse(text, settings.max_frame_bytes)
            except BadInput as e:
                await send({"type": "error", "message": str(e)})
                continue
            kind = req.pop("type")
            if kind == "describe":
                await send(describe(session, settings))
            elif kind == "cancel":
                if job is not None and not job.done():
                    cancelled.set()
                else:
                    await send({"type": "error", "message": "cancel: nothing is running"})
            elif job is not None and not job.done():
                await send({"type": "error", "message": f"{kind}: an experiment is already "
                            "running on this page; cancel it first"})
            elif session.closed or app.state.sessions.get(session.id) is None:
                await send({"type": "error", "message": _GONE_MESSAGE, "fatal": True})
                break
            else:
                cancelled = asyncio.Event()
                job = asyncio.create_task(run(kind, req, cancelled))
    except WebSocketDisconnect:
        pass
    except Exception as e:  # the connection broke under us
        log.info("lab: connection ended: %r", e)
    finally:
        if job is not None and not job.done():
            cancelled.set()  # the page left: stop starting work, kill a search
            try:
                await asyncio.wait_for(job, 30)
            except Exception:
                pass


def _gone(websocket: WebSocket) -> bool:
    return (websocket.client_state != WebSocketState.CONNECTED
            or websocket.application_state != WebSocketState.CONNECTED)


def _parse(text, max_bytes: int) -> dict:
    if frame_bytes(text, max_bytes) > max_bytes:
        raise BadInput(f"frame too large (the limit is {max_bytes} bytes)")
    try:
        data = orjson.loads(text)
    except orjson.JSONDecodeError as e:
        raise BadInput(f"malformed JSON: {e}") from None
    if not isinstance(data, dict):
        raise BadInput('a frame must be a JSON object with a "type"')
    kind = data.get("type")
    if kind not in KINDS:
        raise BadInput(f"type: {quote(kind)} is not one of {', '.join(KINDS)}")
    return data
