"""Security headers on every HTTP answer, and quieter logs for one kind of bad client input.

The page runs only its own scripts (`script-src 'self'`: no inline script, no eval); styles allow
inline attributes, which the renderer uses for per-node colours (a hue per epoch, say). `frame-ancestors`
comes from PLAYGROUND_FRAME_ANCESTORS (default `'none'`, with X-Frame-Options: DENY; set it to
`'self' https://slides.example.org` to embed the page in slides). A pure ASGI middleware, so
streamed answers (trace exports) are not buffered.
"""

from __future__ import annotations

import logging

from .settings import Settings


def csp(settings: Settings) -> str:
    return ("default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
            "img-src 'self' data: blob:; connect-src 'self'; object-src 'none'; base-uri 'none'; "
            f"form-action 'self'; frame-ancestors {settings.frame_ancestors}")


class SecurityHeaders:
    def __init__(self, app, settings: Settings):
        self.app = app
        headers = [
            (b"content-security-policy", csp(settings).encode()),
            (b"x-content-type-options", b"nosniff"),
            (b"referrer-policy", b"no-referrer"),  # share links are in URLs: never pass them on
        ]
        if settings.frame_ancestors.strip() == "'none'":
            headers.append((b"x-frame-options", b"DENY"))
        elif settings.frame_ancestors.strip() == "'self'":
            headers.append((b"x-frame-options", b"SAMEORIGIN"))
        self.headers = headers

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)

        async def send_with_headers(message):
            if message["type"] == "http.response.start":
                message.setdefault("headers", [])
                message["headers"] = list(message["headers"]) + self.headers
            await send(message)

        await self.app(scope, receive, send_with_headers)


class OneLine(logging.Filter):
    """uvicorn logs a text frame that is not UTF-8 (which it closes with 1007, as RFC 6455 asks)
    as an ERROR with a traceback; one line at WARNING says all there is to say."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.exc_info and "Invalid UTF-8" in str(record.msg):
            record.exc_info = None
            record.exc_text = None
            record.levelno, record.levelname = logging.WARNING, "WARNING"
        return True


def quiet_uvicorn() -> None:
    lg = logging.getLogger("uvicorn.error")
    if not any(isinstance(f, OneLine) for f in lg.filters):
        lg.addFilter(OneLine())
