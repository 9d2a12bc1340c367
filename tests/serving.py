"""Starting a real uvicorn server for a test: a free loopback port, then wait until it listens."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import subprocess
import sys
import time
from pathlib import Path

from app.webbench import wait_listening

ROOT = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(port: int, env: dict, extra_args=(), **popen) -> subprocess.Popen:
    """`uvicorn app.main:app` on 127.0.0.1:port; returns once it accepts connections."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "uvicorn", "app.main:app", "--host", "127.0.0.1", "--port", str(port),
         "--ws-per-message-deflate", "false", *extra_args], cwd=ROOT, env=env, **popen)
    if wait_listening(port, 60):  # a busy shared machine can take a while to import the app
        return proc
    proc.kill()
    raise RuntimeError(f"the server did not start (exit status {proc.poll()})")


def stop_server(proc: subprocess.Popen) -> None:
    proc.terminate()
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        proc.kill()


def redis_command(url: str, *cmd: str) -> bytes:
    """One command to the Redis at `url` (redis://host:port/db) over a plain socket: its raw
    RESP reply (the tests' own look at what Redis holds)."""
    host, port = url.split("//", 1)[1].split("/", 1)[0].rsplit(":", 1)
    with socket.create_connection((host, int(port)), timeout=5) as s:
        s.sendall(b"*%d\r\n" % len(cmd) + b"".join(b"$%d\r\n%s\r\n" % (len(c.encode()), c.encode())
                                                  for c in cmd))
        return s.recv(1 << 20)


def start_redis(port: int) -> subprocess.Popen:
    """A throwaway redis-server on 127.0.0.1:port: no persistence, nothing on disk; returns once
    it answers."""
    proc = subprocess.Popen(
        ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly",
         "no", "--dir", "/tmp", "--dbfilename", f"pg-test-{port}.rdb", "--protected-mode", "no"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5) as s:
                s.sendall(b"PING\r\n")
                if s.recv(16).startswith(b"+PONG"):
                    return proc
        except OSError:
            time.sleep(0.05)
    proc.kill()
    raise RuntimeError("redis-server did not start")


class Balancer:
    """A tiny TCP load balancer on 127.0.0.1 (a test's stand-in for nginx or a cloud LB): each
    new connection goes to the first backend port that accepts it, bytes pumped both ways by
    two threads. No stickiness: a reconnect after a backend died lands on the next one."""

    def __init__(self, backends: list[int]):
        import threading

        self.backends = list(backends)
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        self.port = self.sock.getsockname()[1]
        self._threading = threading
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.sock.accept()
            except OSError:
                return
            for port in self.backends:
                try:
                    upstream = socket.create_connection(("127.0.0.1", port), timeout=2)
                    upstream.settimeout(None)
                    break
                except OSError:
                    continue
            else:
                client.close()
                continue
            for a, b in ((client, upstream), (upstream, client)):
                self._threading.Thread(target=self._pump, args=(a, b), daemon=True).start()

    @staticmethod
    def _pump(src, dst) -> None:
        try:
            while True:
                data = src.recv(65536)
                if not data:
                    break
                dst.sendall(data)
        except OSError:
            pass
        for s in (src, dst):
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def close(self) -> None:
        self.sock.close()


@contextlib.asynccontextmanager
async def uvicorn_on_this_loop(app):
    """`app` served by a real uvicorn on the running loop (sans-I/O websockets, no deflate, as
    `playground serve`); yields its port, and stops it after."""
    import uvicorn

    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning",
                                           ws_per_message_deflate=False, lifespan="on"))
    serving = asyncio.ensure_future(server.serve())
    try:
        while not server.started:
            await asyncio.sleep(0.01)
        yield port
    finally:
        server.should_exit = True
        await asyncio.wait_for(serving, 10)
