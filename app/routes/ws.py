"""The WebSocket: one per page, owning (or reattaching to) a session. See docs/ws-protocol.md."""

from __future__ import annotations

import asyncio

import orjson
from fastapi import APIRouter, WebSocket, WebSocketDisconnect

from engine.scenario import ScenarioError

from ..limits import decode_share
from ..protocols import ADAPTERS
from ..session import TokenBucket, default_scenario
from ..sessions import Full

router = APIRouter()


async def _refuse(websocket: WebSocket, message: str, code: int) -> None:
    await websocket.send_text(orjson.dumps({"type": "error", "seq": 1, "t": 0, "message": message,
                                            "fatal": True}).decode())
    await websocket.close(code=code)


@router.websocket("/ws")
async def stream(websocket: WebSocket):
    app = websocket.app
    settings = app.state.settings
    manager = app.state.sessions
    q = websocket.query_params
    await websocket.accept()

    session = manager.get(q.get("session"))
    errors: list[str] = []
    if session is None:
        protocol = q.get("protocol", "raft")
        if protocol not in ADAPTERS:
            errors.append(f"protocol: {protocol!r} is not available yet (available: "
                          f"{', '.join(sorted(ADAPTERS))}); showing raft")
        speed = None
        if q.get("speed"):
            try:
                speed = float(q["speed"])
                if not settings.min_speed <= speed <= settings.max_speed:
                    raise ValueError
            except ValueError:
                errors.append(f"speed: {q['speed']!r} is not a speed between {settings.min_speed:g} "
                              f"and {settings.max_speed:g} (1 = real time)")
                speed = None
        scenario, lesson, until, playing = default_scenario(settings), None, 0.0, True
        name = q.get("scenario")
        if name:
            lf = app.state.lessons.get(name)
            if lf is None:
                errors.append(f"scenario: no lesson named {name!r}")
            else:
                scenario, lesson = lf.scenario, lf.name
        if q.get("share"):
            try:
                scenario, until, lesson = decode_share(q["share"], settings)
                playing = False
            except ScenarioError as e:
                errors.append(str(e))
        try:
            session = manager.create(scenario, lesson, speed, until_ms=until,
                                     playing=None if playing else False)
        except Full as e:
            await _refuse(websocket, str(e), 1013)
            return
        except ScenarioError as e:  # the scenario itself is over a cap: fall back to a live cluster
            errors.append(str(e))
            try:
                session = manager.create(default_scenario(settings), None, speed)
            except Full as e2:
                await _refuse(websocket, str(e2), 1013)
                return
    else:
        session.queue_hello()
        session.queue_snapshot()
    for e in errors:
        session.queue_error(e)
    await manager.attach(session, websocket)
    bucket = TokenBucket(settings.ws_rate_per_s, settings.ws_burst)  # per connection
    try:
        while True:
            msg = await websocket.receive()
            if msg["type"] == "websocket.disconnect":
                break
            data = msg.get("text")
            if data is None:
                data = msg.get("bytes") or b""
            session.handle(data, bucket)  # never raises: errors become `error` frames
            # A client sending frames back to back must not keep the loop from every other
            # session's ticks and input: one handled frame, then everyone else's turn.
            await asyncio.sleep(0)
    except WebSocketDisconnect:
        pass
    finally:
        manager.detach(session, websocket)
