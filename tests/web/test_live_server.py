"""Against a real uvicorn server on a free loopback port: what only real sockets show.

- A client that sends but never reads (issue 7, defect 1): once its frames have been stuck for
  `PLAYGROUND_SEND_STALL_S`, the server drops the connection (it cannot even send a close frame
  into a full buffer, so it aborts the TCP connection), and keeps serving everyone else.
- A text frame that is not UTF-8 (defect 10) is logged in one line, without a traceback.

Bounded: every loop has a count and a deadline; the server is stopped at the end.
"""

from __future__ import annotations

import base64
import json
import os
import socket
import struct
import subprocess
import time
import urllib.request

import pytest

from ..serving import free_port, start_server, stop_server

@pytest.fixture(scope="module")
def live(tmp_path_factory):
    port = free_port()
    log = tmp_path_factory.mktemp("live") / "server.log"
    env = {**os.environ, "PLAYGROUND_SEND_STALL_S": "1", "PLAYGROUND_REAP_INTERVAL_S": "0.25",
           "PLAYGROUND_WS_RATE_PER_S": "1000", "PLAYGROUND_WS_BURST": "1000"}
    with open(log, "wb") as out:
        proc = start_server(port, env, stdout=out, stderr=subprocess.STDOUT)
    yield port, log
    stop_server(proc)


def _handshake(port: int, path: str = "/ws", rcvbuf: int | None = None) -> socket.socket:
    s = socket.socket()
    if rcvbuf:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
    s.connect(("127.0.0.1", port))
    key = base64.b64encode(os.urandom(16)).decode()
    s.sendall((f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\n"
               f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
               "Sec-WebSocket-Version: 13\r\n\r\n").encode())
    head = b""
    while b"\r\n\r\n" not in head:
        head += s.recv(1)
    assert b" 101 " in head.split(b"\r\n")[0]
    return s


def _frame(payload: bytes, opcode: int = 1) -> bytes:
    """A masked client frame (RFC 6455 §5.2)."""
    mask = os.urandom(4)
    n = len(payload)
    head = bytes([0x80 | opcode])
    if n < 126:
        head += bytes([0x80 | n])
    elif n < 65536:
        head += bytes([0x80 | 126]) + struct.pack("!H", n)
    else:
        head += bytes([0x80 | 127]) + struct.pack("!Q", n)
    return head + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(payload))


def _healthz(port: int) -> dict:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=5) as r:
        return json.loads(r.read())


def test_a_client_that_never_reads_is_dropped_and_the_server_goes_on(live):
    port, _log = live
    s = _handshake(port, rcvbuf=4096)
    s.sendall(_frame(json.dumps({"type": "control", "do": "configure", "nodes": 9}).encode()))
    snap = _frame(b'{"type": "control", "do": "snapshot"}')
    dropped = False
    deadline = time.monotonic() + 30
    sent = 0
    while time.monotonic() < deadline and sent < 20_000:
        try:
            s.sendall(snap)
            sent += 1
        except OSError:  # reset by the server
            dropped = True
            break
        time.sleep(0.01)
    s.close()
    assert dropped, f"still connected after {sent} frames"
    assert _healthz(port)["ok"] is True


def test_a_text_frame_that_is_not_utf8_is_logged_in_one_line(live):
    port, log = live
    s = _handshake(port)
    s.sendall(_frame(b'{"type": "\xff\xfe"}'))
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and b"Invalid UTF-8" not in log.read_bytes():
        time.sleep(0.1)
    s.close()
    text = log.read_text(errors="replace")
    assert "Invalid UTF-8" in text
    assert "Traceback" not in text and "UnicodeDecodeError" not in text
