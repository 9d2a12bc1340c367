"""The WebSocket: one per page, owning (or reattaching to) a session. See docs/ws-protocol.md."""

from __future__ import annotations

import asyncio
import logging
from urllib.parse import urlsplit

import orjson
from fastapi import APIRouter, WebSocket, WebSocketDisconnect

from engine.scenario import ScenarioError

from ..limits import decode_share_link, quote
from ..protocols import DEFAULT_PROTOCOL, available, get_adapter
from ..rooms import RoomError, normalize_code
from ..session import TokenBucket, default_scenario, resolve_variants
from ..sessions import Full
from ..wire import BadInput, parse_attach

router = APIRouter()
log = logging.getLogger("playground.ws")

# Close codes (docs/ws-protocol.md): 4003 refused (origin, a missing or wrong secret), 4004 the
# session is gone (the server restarted, or it expired).
REFUSED, GONE = 4003, 4004


async def _refuse(websocket: WebSocket, message: str, code: int, **extra) -> None:
    frame = {"type": "error", "seq": 1, "t": 0, "message": message, "fatal": True, **extra}
    try:
        await websocket.send_text(orjson.dumps(frame).decode())
        await websocket.close(code=code)
    except Exception:  # the peer went away first
        pass


def origin_allowed(origin: str | None, host: str | None, settings) -> bool:
    """A browser page may open the socket only from this server's own pages (same host and
    port) or from an origin listed in PLAYGROUND_ALLOWED_ORIGINS. Clients that send no Origin
    (not a browser: scripts, tests, load generators) are not a cross-site risk."""
    if origin is None:
        return True
    allowed = settings.origins()
    if "*" in allowed or origin.rstrip("/").lower() in allowed:
        return True
    try:
        u = urlsplit(origin)
        port = u.port or {"http": 80, "https": 443}.get(u.scheme)
        h = urlsplit("//" + (host or ""))
        host_port = h.port or {"http": 80, "https": 443}.get(u.scheme)
    except ValueError:
        return False
    # Default ports are the same port written or not (`example.org` is `example.org:443`).
    return bool(host) and bool(u.hostname) and u.hostname == h.hostname and port == host_port


@router.websocket("/ws")
async def stream(websocket: WebSocket):
    manager = websocket.app.state.sessions
    manager.connection_opened()
    try:
        await _stream(websocket)
    finally:
        manager.connection_ended()  # (what it leaves counts toward the GC keeper's next full pass)


async def _stream(websocket: WebSocket):
    app = websocket.app
    settings = app.state.settings
    manager = app.state.sessions
    q = websocket.query_params
    await websocket.accept()
    origin = websocket.headers.get("origin")
    if not origin_allowed(origin, websocket.headers.get("host"), settings):
        return await _refuse(websocket, f"origin: pages from {quote(origin, 80)} may not open this "
                             "playground's WebSocket (allowed: this server's own pages and "
                             "PLAYGROUND_ALLOWED_ORIGINS)", REFUSED)
    if "session" in q:
        return await _refuse(websocket, "session: a session id in the URL is not accepted; to "
                             "reattach, open /ws?attach=1 and send {\"type\": \"attach\", "
                             "\"session\": ..., \"secret\": ...} as the first frame (the secret "
                             "is in the session's first hello)", REFUSED)
    client = websocket.client.host if websocket.client else None
    rooms = app.state.rooms
    if "room" in q:
        return await _follow(websocket, q["room"], client, rooms)

    errors: list[str] = []
    greet = False
    if q.get("attach"):
        session, greet = await _reattach(websocket, settings, manager, rooms, client)
        if session is None:
            return
    else:
        protocol = q.get("protocol", DEFAULT_PROTOCOL)
        if protocol not in available():
            errors.append(f"protocol: {quote(protocol)} is not available yet (available: "
                          f"{', '.join(available())}); showing {DEFAULT_PROTOCOL}")
            protocol = DEFAULT_PROTOCOL
        speed = None
        if q.get("speed"):
            try:
                speed = float(q["speed"])
                if not settings.min_speed <= speed <= settings.max_speed:
                    raise ValueError
            except ValueError:
                errors.append(f"speed: {quote(q['speed'])} is not a speed between {settings.min_speed:g} "
                              f"and {settings.max_speed:g} (1 = real time)")
                speed = None
        if speed is None:
            speed = get_adapter(protocol).default_speed  # (None: the settings' default)
        scenario, lesson, until, playing = default_scenario(settings, protocol=protocol), None, 0.0, True
        name = q.get("scenario")
        if name:
            lf = app.state.lessons.get(name)
            if lf is None:
                errors.append(f"scenario: no lesson named {quote(name)}")
            else:
                scenario, lesson = lf.scenario, lf.name
        variants: list = []
        if q.get("share"):
            try:
                scenario, until, lesson, variants = decode_share_link(q["share"], settings)
                playing = False
            except ScenarioError as e:
                errors.append(str(e))
        if q.get("compare") is not None:  # names, comma-separated (replacing a link's own)
            try:
                variants = resolve_variants(get_adapter(scenario.protocol), scenario.config,
                                            [n for n in q["compare"].split(",") if n], "compare")
            except BadInput as e:
                variants = []  # what the error says: one world
                errors.append(f"{e}; showing one world")
        try:
            session = manager.create(scenario, lesson, speed, until_ms=until,
                                     playing=None if playing else False, client=client,
                                     variants=variants)
        except Full as e:
            await _refuse(websocket, str(e), 1013)
            return
        except ScenarioError as e:  # the scenario itself is over a cap: fall back to a live cluster
            errors.append(str(e))
            try:
                session = manager.create(default_scenario(settings, protocol=protocol), None, speed,
                                         client=client)
            except Full as e2:
                await _refuse(websocket, str(e2), 1013)
                return
    for e in errors:
        session.queue_error(e)
    rooms.track(session)
    if not await manager.attach(session, websocket, greet=greet):
        return await _refuse(websocket, _GONE_MESSAGE, GONE, gone=True)
    room = rooms.room_of(session)
    if room is not None:  # a presenter's page back: it is told its room (and its audience a picture)
        room.tell(force=True)
    bucket = TokenBucket(settings.ws_rate_per_s, settings.ws_burst)  # per connection
    try:
        while True:
            msg = await websocket.receive()
            if msg["type"] == "websocket.disconnect":
                break
            if not session.owns(websocket):
                break  # taken over by another connection, or closed as too far behind
            data = msg.get("text")
            if data is None:
                data = msg.get("bytes") or b""
            if not rooms.intercept(session, data):  # a room control (app/rooms.py), or:
                session.handle(data, bucket)  # never raises: errors become `error` frames
            # A client sending frames back to back must not keep the loop from every other
            # session's ticks and input: one handled frame, then everyone else's turn.
            await asyncio.sleep(0)
    except WebSocketDisconnect:
        pass
    except Exception as e:  # the connection broke under us: one line, no traceback
        log.info("session %s: connection ended: %r", session.id, e)
    finally:
        manager.detach(session, websocket)


_GONE_MESSAGE = ("gone: this session is no longer on the server (the server restarted, or the "
                 "session expired after its tab was closed); your run was lost")


async def _follow(websocket: WebSocket, code_text: str, client, rooms) -> None:
    """`/ws?room=CODE`: follow a room, read-only (app/rooms.py). No session, no secret."""
    code = normalize_code(code_text)
    if code is None:
        return await _refuse(websocket, f"room: {quote(code_text, 20)} is not a room code (six "
                             "letters and digits, as the presenter's page shows it)", REFUSED)
    try:
        viewer = await rooms.join(code, websocket, client)
    except LookupError:
        return await _refuse(websocket, f"room: there is no room {code} (it was closed, or the code "
                             "is mistyped)", GONE, gone=True, room=code)
    except RoomError as e:
        return await _refuse(websocket, str(e), 1013)
    except Exception as e:  # the broker is down
        return await _refuse(websocket, f"room: cannot follow room {code} now ({e})", 1013)
    try:
        while True:
            msg = await websocket.receive()
            if msg["type"] == "websocket.disconnect":
                break
            rooms.viewer_input(viewer, msg.get("text") or msg.get("bytes") or b"")
            await asyncio.sleep(0)
    except WebSocketDisconnect:
        pass
    except Exception as e:
        log.info("room %s: a viewer's connection ended: %r", code, e)
    finally:
        await rooms.leave(viewer)


async def _reattach(websocket: WebSocket, settings, manager, rooms, client):
    """The first frame of `?attach=1` names the session and proves the page holds its secret.
    (session, greet): a session this worker lost (another worker ran it, or this one restarted)
    is rebuilt from its recipe when the broker is shared (app/rooms.py); its replay greets."""
    try:
        msg = await asyncio.wait_for(websocket.receive(), settings.attach_timeout_s)
    except asyncio.TimeoutError:
        await _refuse(websocket, f"attach: no attach frame within {settings.attach_timeout_s:g} s",
                      REFUSED)
        return None, False
    if msg["type"] == "websocket.disconnect":
        return None, False
    try:
        a = parse_attach(msg.get("text") or msg.get("bytes") or b"", settings.max_frame_bytes)
    except BadInput as e:
        await _refuse(websocket, str(e), REFUSED)
        return None, False
    session = manager.get(a.session)
    if session is None:
        try:
            session = await rooms.rebuild(a.session, a.secret, a.t, client, a.pending, a.seen)
        except RoomError as e:
            await _refuse(websocket, str(e), REFUSED)
            return None, False
        except Full as e:
            await _refuse(websocket, str(e), 1013)
            return None, False
        except Exception as e:  # the broker is down, or the recipe is unusable
            log.info("session %s: could not rebuild it from its recipe: %r", a.session, e)
            session = None
        if session is None:
            await _refuse(websocket, _GONE_MESSAGE, GONE, gone=True)
            return None, False
        return session, False
    if not session.check_secret(a.secret):
        await _refuse(websocket, "attach.secret: not this session's secret; only the page that "
                      "opened a session may reattach to it", REFUSED)
        return None, False
    return session, True
