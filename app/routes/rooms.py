"""A room's audience page (`/room/CODE`), a typed code (`/room?code=...`) and its QR code."""

from __future__ import annotations

import io

import orjson
import segno
from fastapi import APIRouter, Depends, HTTPException, Query, Request
from fastapi.responses import RedirectResponse, Response

from ..broker import BrokerDown
from ..protocols import DEFAULT_PROTOCOL, available
from ..rooms import normalize_code
from .deps import get_lessons, get_settings
from .pages import render_page

router = APIRouter()


@router.get("/room", include_in_schema=False)
def join_form(code: str = Query("", max_length=40)):
    """The join form's answer: the room's page, whatever the case and dashes typed."""
    norm = normalize_code(code)
    if norm is None:
        raise HTTPException(400, f"room: {code[:20]!r} is not a room code (six letters and digits)")
    return RedirectResponse(f"/room/{norm}", status_code=303)


@router.get("/room/{code}", include_in_schema=False)
async def audience_page(request: Request, code: str, projector: str | None = None,
                        lessons=Depends(get_lessons), settings=Depends(get_settings)):
    norm = normalize_code(code)
    if norm is None:
        raise HTTPException(404, "room: not a room code (six letters and digits)")
    if norm != code:
        return RedirectResponse(f"/room/{norm}", status_code=303)
    protocol = DEFAULT_PROTOCOL
    try:  # the page module to load: the room's protocol (its hello says it again)
        raw = await request.app.state.rooms.broker.get(f"pg:room:{norm}")
        p = orjson.loads(raw).get("protocol") if raw else None
        if p in available():
            protocol = p
    except BrokerDown:
        pass
    return render_page(request, protocol, projector, None, lessons, settings, room=norm)


@router.get("/room/{code}/qr.svg", include_in_schema=False)
def qr_code(request: Request, code: str):
    """The audience link as a QR code (SVG, drawn here by segno: no script in the page)."""
    norm = normalize_code(code)
    if norm is None:
        raise HTTPException(404, "room: not a room code")
    url = str(request.url_for("audience_page", code=norm))
    buf = io.BytesIO()
    segno.make(url, error="m").save(buf, kind="svg", scale=5, border=2, xmldecl=False,
                                   title=f"Room {norm}: {url}")
    return Response(buf.getvalue(), media_type="image/svg+xml",
                    headers={"Cache-Control": "public, max-age=86400"})
