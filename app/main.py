"""The app factory. `playground serve` runs `uvicorn app.main:app`; nothing else happens at import."""

from __future__ import annotations

import gc
from contextlib import asynccontextmanager

from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates

from .headers import SecurityHeaders, quiet_uvicorn
from .broker import make_broker
from .lessons import load_lessons
from .lab import LabPool
from .rooms import RoomService
from .routes import api, lab, pages, rooms, ws
from .sessions import SessionManager
from .settings import ROOT, Settings
from .transport import KeepServerSend


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or Settings.from_env()
    lessons, lesson_errors = load_lessons(settings.scenarios_dir)

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        # Everything imported and built so far lives as long as the process: move it out of the
        # collector's sight, so a full collection (which stops every session's stream) only scans
        # the sessions' own objects (about a quarter less pause with 500 sessions).
        quiet_uvicorn()
        gc.collect()
        gc.freeze()
        app.state.sessions.start()
        await app.state.rooms.start()
        yield
        await app.state.rooms.stop()
        await app.state.sessions.stop()
        app.state.lab.close()

    # /docs and /openapi.json are off unless PLAYGROUND_API_DOCS=1: the page needs neither, and the
    # documented interfaces are docs/ws-protocol.md and docs/trace-format.md.
    docs = settings.api_docs
    app = FastAPI(title="Distributed Systems Playground", lifespan=lifespan,
                  docs_url="/docs" if docs else None, redoc_url=None,
                  openapi_url="/openapi.json" if docs else None)
    app.add_middleware(SecurityHeaders, settings=settings)
    app.add_middleware(KeepServerSend)  # added last: outermost, sees the server's own `send`
    app.state.settings = settings
    app.state.lessons = lessons
    app.state.lesson_errors = lesson_errors
    app.state.sessions = SessionManager(settings, lessons)
    app.state.rooms = RoomService(settings, make_broker(settings.broker), app.state.sessions)
    app.state.lab = LabPool(settings.lab_workers)  # processes start with the first experiment
    app.state.templates = Jinja2Templates(directory=str(ROOT / "templates"))
    app.mount("/static", StaticFiles(directory=str(ROOT / "static")), name="static")
    app.include_router(pages.router)
    app.include_router(api.router)
    app.include_router(rooms.router)
    app.include_router(ws.router)
    app.include_router(lab.router)
    return app


app = create_app()
