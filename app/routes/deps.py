"""Dependencies the routers share (everything lives on `app.state`, built by `create_app`)."""

from __future__ import annotations

from fastapi import Request

from ..sessions import SessionManager
from ..settings import Settings


def get_settings(request: Request) -> Settings:
    return request.app.state.settings


def get_sessions(request: Request) -> SessionManager:
    return request.app.state.sessions


def get_lessons(request: Request) -> dict:
    return request.app.state.lessons
