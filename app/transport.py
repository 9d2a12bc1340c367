"""Reaching under the WebSocket when a peer stops reading.

A close frame cannot be written into a send buffer that a peer never empties (uvicorn waits for
the transport to become writable first), so a connection that fell hopelessly behind must be
aborted at the TCP level. ASGI does not expose the transport; uvicorn's own `send` callable is a
bound method of its protocol object, which holds it. `KeepServerSend` (outermost, before Starlette
wraps `send`) keeps that callable in the WebSocket's scope; `close_or_abort` tries a clean close
first and aborts only when that cannot complete. Under another server, aborting degrades to the
clean close alone.
"""

from __future__ import annotations

import asyncio

SCOPE_KEY = "playground.server_send"


class KeepServerSend:
    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] == "websocket":
            scope[SCOPE_KEY] = send
        await self.app(scope, receive, send)


def transport_of(ws):
    """The asyncio transport under a Starlette WebSocket served by uvicorn, or None."""
    scope = getattr(ws, "scope", None) or {}
    send = scope.get(SCOPE_KEY)
    proto = getattr(send, "__self__", None)
    return getattr(proto, "transport", None)


async def close_or_abort(ws, code: int, reason: str, timeout_s: float = 2.0) -> None:
    """Close `ws` with `code` and `reason` (at most 123 bytes); if the close frame cannot be
    written within `timeout_s`, abort the TCP connection, which frees its buffers at once."""
    reason = reason.encode()[:123].decode(errors="ignore")
    try:
        await asyncio.wait_for(ws.close(code=code, reason=reason), timeout_s)
        return
    except Exception:
        pass
    tr = transport_of(ws)
    if tr is not None:
        try:
            tr.abort()
        except Exception:  # pragma: no cover - nothing more can be done for this socket
            pass


__all__ = ["KeepServerSend", "transport_of", "close_or_abort", "SCOPE_KEY"]
