"""Reaching under the WebSocket when a peer stops reading.

A close frame cannot be written into a send buffer that a peer never empties (uvicorn waits for
the transport to become writable first), so a connection that fell hopelessly behind must be
aborted at the TCP level. ASGI does not expose the transport; uvicorn's own `send` callable is a
bound method of its protocol object, which holds it. `KeepServerSend` (outermost, before Starlette
wraps `send`) keeps that callable in the WebSocket's scope; `close_or_abort` tries a clean close
first and aborts only when that cannot complete. Under another server, aborting degrades to the
clean close alone.

The same handle gives a room's fan-out its cheap write path (`raw_frames`): a frame the room
serialised once is framed here (a text frame's header, no mask: server frames carry none) and
written straight to each viewer's transport, without the ASGI `send` chain and the WebSocket
library's per-message framing. Only for uvicorn's sans-I/O websockets protocol (its default) with
no extension negotiated (`playground serve` turns per-message deflate off); anything else keeps
the ordinary `send_text`.
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


def text_frame(payload: bytes) -> bytes:
    """`payload` (UTF-8 text) as one unmasked, final WebSocket text frame (RFC 6455, 5.2)."""
    n = len(payload)
    if n < 126:
        return bytes((0x81, n)) + payload
    if n < 65536:
        return b"\x81\x7e" + n.to_bytes(2, "big") + payload
    return b"\x81\x7f" + n.to_bytes(8, "big") + payload


class RawFrames:
    """Whole text frames written straight to one connection's transport (see the module
    docstring). `writable` is the protocol's own event: clear while the transport's buffer is over
    its high-water mark (the peer is not reading fast enough), set again once it drains."""

    __slots__ = ("_proto", "_transport", "writable")

    def __init__(self, proto):
        self._proto = proto
        self._transport = proto.transport
        self.writable: asyncio.Event = proto.writable

    def write(self, payload: bytes) -> bool:
        """Send `payload` as one text frame; False (nothing written) once the connection is closing."""
        p = self._proto
        if p.close_sent or p.disconnected or p.conn.state is not _OPEN or self._transport.is_closing():
            return False
        n = len(payload)  # text_frame, inlined: this is once per viewer per frame
        if n < 126:
            self._transport.write(bytes((0x81, n)) + payload)
        else:
            self._transport.write(text_frame(payload))
        return True


try:
    from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol
    from websockets.protocol import State

    _OPEN = State.OPEN
except ImportError:  # pragma: no cover - another server, or an older uvicorn: ASGI sends only
    WebSocketsSansIOProtocol = None


def raw_frames(ws) -> RawFrames | None:
    """The cheap write path under `ws` (a Starlette WebSocket), or None when it is not served by
    uvicorn's sans-I/O websockets protocol with no extension (tests' clients, other servers)."""
    if WebSocketsSansIOProtocol is None:
        return None
    scope = getattr(ws, "scope", None) or {}
    proto = getattr(scope.get(SCOPE_KEY), "__self__", None)
    if (not isinstance(proto, WebSocketsSansIOProtocol) or proto.conn.extensions
            or getattr(proto, "transport", None) is None):
        return None
    return RawFrames(proto)


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


__all__ = ["KeepServerSend", "RawFrames", "SCOPE_KEY", "close_or_abort", "raw_frames", "text_frame",
           "transport_of"]
