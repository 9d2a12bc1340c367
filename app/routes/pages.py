"""The page and its htmx fragments (lesson notes, mutation switches, keyboard help)."""

from __future__ import annotations

import re

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import HTMLResponse

from engine.protocols import get_protocol

from ..protocols import DEFAULT_PROTOCOL, available, get_adapter
from .deps import get_lessons, get_settings

router = APIRouter()

# The generic shortcuts; each protocol's own (a client request, crashing its leader...) come from
# its adapter, and the page module binds the keys.
SHORTCUTS = [
    ("Space", "play / pause"),
    (".", "step one event (presenter remotes send it)"),
    ("\u2190 / \u2192", "rewind / forward 100 ms of simulated time"),
    ("PageDown / PageUp", "a stepped lesson: play to the next step's pause point / back to the "
                          "step's start (presenter remotes send them)"),
    ("B", "blank the screen (for the class) / show it again"),
    ("+ / \u2212", "faster / slower"),
    ("H", "heal every partition and cut"),
    ("G", "partition tool: click nodes to put them in a group"),
    ("M", "manual delivery on / off (messages wait on their links; click one to deliver it)"),
    ("S", "copy a share link to this moment"),
    ("P", "projector mode"),
    ("?", "this help"),
    ("Esc", "close menus and this help"),
]


def _tpl(request: Request):
    return request.app.state.templates


def _adapter(protocol: str):
    return get_adapter(protocol) if protocol in available() else None


def shortcuts(protocol: str) -> list[tuple[str, str]]:
    a = _adapter(protocol)
    return SHORTCUTS[:5] + list(a.shortcuts if a else ()) + SHORTCUTS[5:]


@router.api_route("/", methods=["GET", "HEAD"], response_class=HTMLResponse, include_in_schema=False)
def index(request: Request, protocol: str = Query(DEFAULT_PROTOCOL, max_length=40),
          projector: str | None = None, scenario: str | None = None,
          lessons=Depends(get_lessons), settings=Depends(get_settings)):
    return render_page(request, protocol, projector, scenario, lessons, settings)


def render_page(request: Request, protocol: str, projector: str | None, scenario: str | None,
                lessons, settings, room: str | None = None):
    """The page; with `room`, the audience's page of that room (app/routes/rooms.py)."""
    notice = None
    known = available()
    if protocol not in known:
        # No silent fallback: the page says so and offers the chooser (its module refuses too).
        notice = (f"protocol: {protocol!r} is not in this playground (available: "
                  f"{', '.join(known)}); pick one above")
    mine = {n: lf for n, lf in lessons.items() if lf.scenario.protocol == protocol}
    if scenario and scenario not in mine:
        notice = f"no lesson named {scenario!r}; showing a live cluster"
    return _tpl(request).TemplateResponse(request, "index.html", {
        "protocol": protocol,
        "protocols": [(p, get_adapter(p).title) for p in known],
        "title": _adapter(protocol).title if protocol in known else protocol,
        "projector": projector in ("1", "true", "yes"),
        "lessons": mine,
        "current": scenario if scenario in mine else "",
        "notice": notice,
        "shortcuts": shortcuts(protocol),
        "node_counts": [n for n in (3, 5, 7, 9) if n <= settings.max_nodes],
        "speed_bounds": (settings.min_speed, settings.max_speed, settings.default_speed),
        "room": room,
    })


@router.get("/fragments/lesson", response_class=HTMLResponse)
def lesson_fragment(request: Request, scenario: str = Query("", max_length=100),
                    protocol: str = Query(DEFAULT_PROTOCOL, max_length=40),
                    lessons=Depends(get_lessons)):
    lf = lessons.get(scenario)
    a = _adapter(lf.scenario.protocol if lf else protocol)
    return _tpl(request).TemplateResponse(request, "partials/lesson.html", {
        "lesson": lf, "intro": a.intro if a else None, "see": see_also(lf, lessons)})


def see_also(lf, lessons) -> list[tuple[str, str, str]]:
    """The other lessons a lesson's suggestion names ("Load zk_failover: ..."), as (name, title,
    protocol): the panel links to them, across protocols too (compare mode cannot mix them)."""
    if lf is None or not lf.suggest:
        return []
    words = set(re.findall(r"[A-Za-z0-9_]+", lf.suggest))
    return [(n, o.title, o.scenario.protocol) for n, o in lessons.items()
            if n in words and n != lf.name and o.scenario.protocol in available()]


@router.get("/fragments/mutations", response_class=HTMLResponse)
def mutations_fragment(request: Request, protocol: str = Query(DEFAULT_PROTOCOL, max_length=40)):
    try:
        spec = get_protocol(protocol)
        invariants, mutations = spec.invariants, sorted(spec.mutations.items())
    except ValueError:
        invariants, mutations = (), []
    a = _adapter(protocol)
    options = sorted((n, w) for n, w in a.options.items()
                     if a.switches is None or n in a.switches) if a else []
    return _tpl(request).TemplateResponse(request, "partials/mutations.html", {
        "mutations": mutations, "invariants": invariants, "options": options,
        "background_clients": bool(a and a.background_clients)})


@router.get("/fragments/help", response_class=HTMLResponse)
def help_fragment(request: Request, protocol: str = Query(DEFAULT_PROTOCOL, max_length=40)):
    return _tpl(request).TemplateResponse(request, "partials/help.html",
                                          {"shortcuts": shortcuts(protocol)})
