"""`playground bench --web`: load-test the web playground on loopback and print JSON figures.

It starts its own server (one uvicorn worker, per-message deflate off, in a child process on a free
127.0.0.1 port), then, from this process, with asyncio WebSocket clients:

1. stream: `--sessions` sessions (default 500), each a live 5-node cluster at the default speed
   streaming 20 frames/s. Frame lateness = arrival time here - the wall time the server's runner
   meant to send it (the frame's `w` field); also frames/s and bytes/s per session, server CPU.
2. click: `--click-sessions` live sessions (default 200) each sending a client request about once a
   second; click-to-frame latency = from sending the action to the first frame showing its effect.
3. fps: headless Chromium at 1280x720 on a 9-node cluster with at least 100 messages in flight,
   counting requestAnimationFrame callbacks (app/fpsbench.py).

Everything is bounded: counts are capped, every phase has a deadline, and the server is stopped at
the end whatever happens. Nothing leaves 127.0.0.1.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path

import orjson

ROOT = Path(__file__).resolve().parent.parent
MAX_SESSIONS = 2000
MAX_SECONDS = 120


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _pct(xs: list[float], p: float) -> float | None:
    if not xs:
        return None
    xs = sorted(xs)
    k = min(len(xs) - 1, max(0, int(round(p / 100 * (len(xs) - 1)))))
    return round(xs[k], 2)


def _get(port: int, path: str) -> dict:
    import urllib.request

    with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=10) as r:
        return orjson.loads(r.read())


def _cpu_seconds(pid: int) -> float:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):
        return float("nan")


class Server:
    def __init__(self, env: dict[str, str] | None = None):
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "uvicorn", "app.main:app", "--host", "127.0.0.1", "--port",
             str(self.port), "--ws-per-message-deflate", "false", "--log-level", "warning",
             "--ws-max-queue", "64"],
            cwd=ROOT, env={**os.environ, "PLAYGROUND_MAX_SESSIONS": str(MAX_SESSIONS + 10),
                          "PLAYGROUND_BENCH_STATS": "1", **(env or {})})
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5):
                    return
            except OSError:
                time.sleep(0.1)
        self.stop()
        raise RuntimeError("the server did not start")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()


async def _open(port: int, n: int, query: str = ""):
    from websockets.asyncio.client import connect

    conns = []
    for i in range(0, n, 50):
        batch = [connect(f"ws://127.0.0.1:{port}/ws{query}", compression=None, max_size=2**24,
                         open_timeout=30) for _ in range(min(50, n - i))]
        conns += await asyncio.gather(*batch)
    return conns


async def stream_phase(port: int, sessions: int, warmup_s: float, measure_s: float) -> dict:
    conns = await _open(port, sessions)
    lateness: list[float] = []
    frames = [0] * sessions
    nbytes = [0] * sessions
    measuring = False
    stop = False

    async def reader(i, ws):
        nonlocal measuring
        # Cheap on purpose (bytes, no JSON parse): the load generator shares the machine with the
        # server, and its own delays count against the figure.
        try:
            while not stop:
                msg = await ws.recv(decode=False)
                if not measuring:
                    continue
                now = time.time() * 1000
                frames[i] += 1
                nbytes[i] += len(msg)
                k = msg.find(b'"w":', 0, 80)
                if k > 0:
                    end = msg.find(b",", k)
                    if end < 0:
                        end = msg.find(b"}", k)
                    lateness.append(now - float(msg[k + 4:end]))
        except Exception:
            pass

    tasks = [asyncio.ensure_future(reader(i, ws)) for i, ws in enumerate(conns)]
    await asyncio.sleep(warmup_s)
    await asyncio.to_thread(_get, port, "/api/stats?reset=true")
    measuring = True
    t0 = time.monotonic()
    await asyncio.sleep(measure_s)
    measuring = False
    elapsed = time.monotonic() - t0
    server_side = await asyncio.to_thread(_get, port, "/api/stats")
    stop = True
    for ws in conns:
        await ws.close()
    for t in tasks:
        t.cancel()
    fps = [f / elapsed for f in frames]
    bps = [b / elapsed for b in nbytes]
    return {
        "sessions": sessions, "seconds": round(elapsed, 2),
        "frame_lateness_server_ms": server_side["lateness_ms"],
        "frame_lateness_ms": {"p50": _pct(lateness, 50), "p90": _pct(lateness, 90),
                              "p99": _pct(lateness, 99), "max": _pct(lateness, 100),
                              "samples": len(lateness)},
        "frames_per_s_per_session": {"mean": round(statistics.fmean(fps), 2), "min": round(min(fps), 2)},
        "bytes_per_s_per_session": {"mean": round(statistics.fmean(bps)), "p99": _pct(bps, 99)},
    }


async def click_phase(port: int, sessions: int, measure_s: float) -> dict:
    conns = await _open(port, sessions)
    latencies: list[float] = []
    stop = False

    async def clicker(i, ws):
        import random

        rng = random.Random(i)
        sent_at = None
        next_click = time.monotonic() + 1 + rng.random()
        value = 0
        try:
            while not stop:
                timeout = max(0.0, next_click - time.monotonic()) if sent_at is None else 5.0
                try:
                    msg = await asyncio.wait_for(ws.recv(), timeout)
                except asyncio.TimeoutError:
                    msg = None
                if msg is not None and sent_at is not None and '"You: sent w k1=' in msg:
                    f = orjson.loads(msg)
                    if any(f"w k1={value} to" in w for _, w in f.get("ev", [])):
                        latencies.append((time.perf_counter() - sent_at) * 1000)
                        sent_at = None
                        next_click = time.monotonic() + 0.5 + rng.random()
                if sent_at is None and time.monotonic() >= next_click:
                    value += 1
                    sent_at = time.perf_counter()
                    await ws.send(orjson.dumps({"type": "action", "action": {
                        "do": "request", "node": f"n{1 + value % 5}", "op": "write", "key": "k1",
                        "value": value}}).decode())
        except Exception:
            pass

    tasks = [asyncio.ensure_future(clicker(i, ws)) for i, ws in enumerate(conns)]
    await asyncio.sleep(measure_s)
    stop = True
    await asyncio.sleep(0.2)
    for ws in conns:
        await ws.close()
    for t in tasks:
        t.cancel()
    return {"sessions": sessions, "seconds": measure_s, "clicks": len(latencies),
            "click_to_frame_ms": {"p50": _pct(latencies, 50), "p90": _pct(latencies, 90),
                                  "p99": _pct(latencies, 99), "max": _pct(latencies, 100)}}


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(prog="playground bench --web", description=__doc__.split("\n\n")[0])
    ap.add_argument("--sessions", type=int, default=500)
    ap.add_argument("--click-sessions", type=int, default=200)
    ap.add_argument("--warmup-s", type=float, default=5)
    ap.add_argument("--measure-s", type=float, default=15)
    ap.add_argument("--phases", default="stream,click,fps", help="comma-separated: stream, click, fps")
    ap.add_argument("--fps-seconds", type=float, default=5)
    ap.add_argument("--out", help="also write the JSON here")
    a = ap.parse_args(argv)
    if not (1 <= a.sessions <= MAX_SESSIONS and 1 <= a.click_sessions <= MAX_SESSIONS):
        ap.error(f"sessions must be between 1 and {MAX_SESSIONS}")
    if a.warmup_s + a.measure_s > MAX_SECONDS:
        ap.error(f"warmup + measure must stay under {MAX_SECONDS} s")
    phases = {p.strip() for p in a.phases.split(",") if p.strip()}
    result: dict = {"machine": {"cpus": os.cpu_count(), "python": sys.version.split()[0]},
                    "workers": 1}
    if phases & {"stream", "click"}:
        srv = Server()
        try:
            if "stream" in phases:
                cpu0, w0 = _cpu_seconds(srv.proc.pid), time.monotonic()
                result["stream"] = asyncio.run(stream_phase(srv.port, a.sessions, a.warmup_s, a.measure_s))
                result["stream"]["server_cpu_percent"] = round(
                    100 * (_cpu_seconds(srv.proc.pid) - cpu0) / (time.monotonic() - w0), 1)
                time.sleep(1)  # let the server notice the closed sockets
            if "click" in phases:
                result["click"] = asyncio.run(click_phase(srv.port, a.click_sessions, a.measure_s))
        finally:
            srv.stop()
    if "fps" in phases:
        from .fpsbench import measure_fps

        result["fps"] = measure_fps(seconds=a.fps_seconds)
    text = orjson.dumps(result, option=orjson.OPT_INDENT_2).decode()
    print(text)
    if a.out:
        Path(a.out).write_text(text + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
