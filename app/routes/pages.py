"""The page and its htmx fragments (lesson notes, mutation switches, keyboard help)."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import HTMLResponse

from engine.protocols import get_protocol

from ..protocols import ADAPTERS
from .deps import get_lessons, get_settings

router = APIRouter()

SHORTCUTS = [
    ("Space", "play / pause"),
    (".", "step one event (presenter remotes send it)"),
    ("\u2190 / \u2192", "rewind / forward 100 ms of simulated time"),
    ("+ / \u2212", "faster / slower"),
    ("C", "send a client write to the leader"),
    ("R", "crash the leader (restart it with a click)"),
    ("H", "heal every partition and cut"),
    ("G", "partition tool: click nodes to put them in a group"),
    ("S", "copy a share link to this moment"),
    ("P", "projector mode"),
    ("?", "this help"),
    ("Esc", "close menus and this help"),
]


def _tpl(request: Request):
    return request.app.state.templates


@router.api_route("/", methods=["GET", "HEAD"], response_class=HTMLResponse, include_in_schema=False)
def index(request: Request, protocol: str = "raft", projector: str | None = None,
          scenario: str | None = None, lessons=Depends(get_lessons), settings=Depends(get_settings)):
    notice = None
    if protocol not in ADAPTERS:
        notice = (f"protocol {protocol!r} is not in this playground yet "
                  f"(available: {', '.join(sorted(ADAPTERS))}); showing raft")
        protocol = "raft"
    if scenario and scenario not in lessons:
        notice = f"no lesson named {scenario!r}; showing a live cluster"
    return _tpl(request).TemplateResponse(request, "index.html", {
        "protocol": protocol,
        "projector": projector in ("1", "true", "yes"),
        "lessons": lessons,
        "current": scenario if scenario in lessons else "",
        "notice": notice,
        "shortcuts": SHORTCUTS,
        "node_counts": [n for n in (3, 5, 7, 9) if n <= settings.max_nodes],
        "speed_bounds": (settings.min_speed, settings.max_speed, settings.default_speed),
    })


@router.get("/fragments/lesson", response_class=HTMLResponse)
def lesson_fragment(request: Request, scenario: str = Query("", max_length=100),
                    lessons=Depends(get_lessons)):
    lf = lessons.get(scenario)
    return _tpl(request).TemplateResponse(request, "partials/lesson.html", {"lesson": lf})


@router.get("/fragments/mutations", response_class=HTMLResponse)
def mutations_fragment(request: Request, protocol: str = "raft"):
    try:
        spec = get_protocol(protocol)
        invariants, mutations = spec.invariants, sorted(spec.mutations.items())
    except ValueError:
        invariants, mutations = (), []
    return _tpl(request).TemplateResponse(request, "partials/mutations.html", {
        "mutations": mutations, "invariants": invariants})


@router.get("/fragments/help", response_class=HTMLResponse)
def help_fragment(request: Request):
    return _tpl(request).TemplateResponse(request, "partials/help.html", {"shortcuts": SHORTCUTS})
