"""`playground bench --web`: load-test the web playground on loopback and print JSON figures.

It starts its own server (one uvicorn worker, per-message deflate off, in a child process on a free
127.0.0.1 port), then, from this process:

1. stream: `--sessions` sessions (default 500), each a live 5-node cluster at the default speed
   streaming 20 frames/s, read by raw asyncio protocols (`_RawStream`: no task and no JSON
   decoding per frame, so the load generator's own delays hardly count). Frame lateness = arrival
   time here - the wall time the server's runner meant to send it (the frame's `w` field); also
   the server's own view of it (GET /api/stats), frames/s and bytes/s per session, and the CPU
   of the server and of this load generator.
2. click: `--click-sessions` live sessions (default 200, `websockets` clients) each sending a client request about once a
   second; click-to-frame latency = from sending the action to the first frame showing its effect.
3. fps: headless Chromium at 1280x720 on a 9-node cluster with at least 100 messages in flight,
   counting requestAnimationFrame callbacks (app/fpsbench.py).
4. abuse: each abuse on a fresh server, beside one innocent session whose frames/s and longest gap
   between frames are measured, with the server's RSS before and after (issue 7's probes):
   `readers` (5 clients each sending 40 `speed` frames/s on a 9-node session, never reading),
   `heavy` (two heavy 1-hour share links replaying while the innocent page opens a light one: how
   long until its picture arrives), `flood` (1,000 connect-then-close, then a newcomer).

Everything is bounded: counts are capped, every phase has a deadline, and the server is stopped at
the end whatever happens. Nothing leaves 127.0.0.1.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
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


def wait_listening(port: int, seconds: float = 20) -> bool:
    """Wait until something accepts connections on 127.0.0.1:port; False after `seconds`."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return True
        except OSError:
            time.sleep(0.1)
    return False


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
    def __init__(self, env: dict[str, str] | None = None, lift_caps: bool = True):
        """`lift_caps`: the load phases open hundreds of sessions from one address, which the
        per-address caps exist to refuse; the abuse phase keeps every default."""
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "uvicorn", "app.main:app", "--host", "127.0.0.1", "--port",
             str(self.port), "--ws-per-message-deflate", "false", "--log-level", "warning",
             "--ws-max-queue", "64"],
            cwd=ROOT, env={**os.environ, "PLAYGROUND_BENCH_STATS": "1", **({
                "PLAYGROUND_MAX_SESSIONS": str(MAX_SESSIONS + 10),
                "PLAYGROUND_MAX_SESSIONS_PER_CLIENT": str(MAX_SESSIONS + 10),
                "PLAYGROUND_NEW_SESSIONS_PER_CLIENT_BURST": str(MAX_SESSIONS + 10)} if lift_caps else {}),
                **(env or {})})
        if wait_listening(self.port):
            return
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


def stamped_ms(buf: bytearray, start: int, end: int, within: int = 120) -> float | None:
    """The `w` (the wall time its tick was due) of the frame in `buf[start:end]`, when it has
    one among its first `within` bytes; read without decoding the JSON."""
    k = buf.find(b'"w":', start, min(end, start + within))
    if k < 0:
        return None
    e = buf.find(b",", k, end)
    if e < 0:
        e = buf.find(b"}", k, end)
    return float(buf[k + 4:e])


class _RawStream(asyncio.Protocol):
    """The cheapest WebSocket reader we can write: one per session, no task, no per-frame
    coroutine, no JSON. It does the handshake, splits the byte stream into frames, answers pings,
    and hands each text frame's bytes to `on_frame`. (The `websockets` client costs a task wake-up
    and a queue hop per frame; at 500 sessions x 20 frames/s that load generator used about half a
    core of the two this machine has, and its own delays showed up as lateness.)"""

    def __init__(self, port: int, on_frame, query: str = ""):
        self.port = port
        self.query = query
        self.on_frame = on_frame
        self.buf = bytearray()
        self.open = asyncio.get_running_loop().create_future()
        self.transport = None

    def connection_made(self, transport) -> None:
        self.transport = transport
        key = base64.b64encode(os.urandom(16)).decode()
        transport.write((f"GET /ws{self.query} HTTP/1.1\r\nHost: 127.0.0.1:{self.port}\r\nUpgrade: websocket\r\n"
                         f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
                         "Sec-WebSocket-Version: 13\r\n\r\n").encode())

    def connection_lost(self, exc) -> None:
        if not self.open.done():
            self.open.set_exception(ConnectionError("closed during the handshake"))

    def data_received(self, data: bytes) -> None:
        buf = self.buf
        buf += data
        if not self.open.done():
            end = buf.find(b"\r\n\r\n")
            if end < 0:
                return
            if not buf.startswith(b"HTTP/1.1 101"):
                self.open.set_exception(ConnectionError(bytes(buf[:80]).decode("latin-1")))
                return
            del buf[:end + 4]
            self.open.set_result(None)
        now_ms = time.time() * 1000  # every frame in this read arrived now
        i, n = 0, len(buf)
        while n - i >= 2:
            b0, ln = buf[i], buf[i + 1] & 0x7F
            h = 2
            if ln == 126:
                if n - i < 4:
                    break
                ln, h = int.from_bytes(buf[i + 2:i + 4], "big"), 4
            elif ln == 127:
                if n - i < 10:
                    break
                ln, h = int.from_bytes(buf[i + 2:i + 10], "big"), 10
            if n - i < h + ln:
                break
            op = b0 & 0x0F
            if op == 1:
                self.on_frame(buf, i + h, i + h + ln, now_ms)
            elif op == 9:  # ping: answer a masked pong (zero mask) with the same payload
                payload = bytes(buf[i + h:i + h + ln])
                self.transport.write(bytes([0x8A, 0x80 | len(payload)]) + b"\0\0\0\0" + payload)
            i += h + ln
        del buf[:i]

    def close(self) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.write(b"\x88\x82\0\0\0\0\x03\xe8")  # close 1000, masked with zeros
            self.transport.close()


async def stream_phase(port: int, sessions: int, warmup_s: float, measure_s: float) -> dict:
    loop = asyncio.get_running_loop()
    lateness: list[float] = []
    frames = [0] * sessions
    nbytes = [0] * sessions
    measuring = False

    def reader(i):
        def on_frame(buf: bytearray, start: int, end: int, now_ms: float) -> None:
            if not measuring:
                return
            frames[i] += 1
            nbytes[i] += end - start
            w = stamped_ms(buf, start, end, 80)
            if w is not None:
                lateness.append(now_ms - w)
        return on_frame

    conns: list[_RawStream] = []
    for i in range(0, sessions, 50):
        batch = []
        for j in range(i, min(sessions, i + 50)):
            _, proto = await loop.create_connection(lambda j=j: _RawStream(port, reader(j)),
                                                    "127.0.0.1", port)
            batch.append(proto)
        await asyncio.wait_for(asyncio.gather(*(c.open for c in batch)), 30)
        conns += batch
    await asyncio.sleep(warmup_s)
    await asyncio.to_thread(_get, port, "/api/stats?reset=true")
    measuring = True
    t0 = time.monotonic()
    await asyncio.sleep(measure_s)
    measuring = False
    elapsed = time.monotonic() - t0
    server_side = await asyncio.to_thread(_get, port, "/api/stats")
    for c in conns:
        c.close()
    fps = [f / elapsed for f in frames]
    bps = [b / elapsed for b in nbytes]
    return {
        "sessions": sessions, "seconds": round(elapsed, 2),
        "frame_lateness_server_ms": server_side["lateness_ms"],
        "server_gc_full_collections": server_side.get("gc_full_collections"),
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


def _rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return round(int(line.split()[1]) / 1024, 1)
    return float("nan")


def _ws_frame(payload: bytes) -> bytes:
    """A client frame, masked with zeros (RFC 6455 requires a mask, not a secret one)."""
    n = len(payload)
    head = b"\x81" + (bytes([0x80 | n]) if n < 126 else bytes([0x80 | 126]) + n.to_bytes(2, "big"))
    return head + b"\0\0\0\0" + payload


def heavy_share_link() -> str:
    """The probe's 192-character link: 9 nodes, 5 ms heartbeat, every message duplicated, 1 hour."""
    from engine.scenario import parse_scenario

    from .share import encode

    sc = parse_scenario({"nodes": 9, "seed": 1, "duration_ms": 3_600_000,  # the default protocol
                         "config": {"heartbeat_ms": 5, "election_timeout_ms_min": 20,
                                    "election_timeout_ms_max": 40},
                         "network": {"duplicate": 1.0}})
    return encode(sc, 3_600_000)


class _Innocent:
    """One ordinary session: counts its frames and the longest silence between two of them."""

    def __init__(self):
        self.arrivals: list[float] = []
        self.snapshots: list[float] = []

    def on_frame(self, buf, start, end, now_ms):
        self.arrivals.append(now_ms)
        if b'"type":"snapshot"' in buf[start:min(end, start + 40)]:
            self.snapshots.append(now_ms)

    def figures(self, t0_ms: float, t1_ms: float) -> dict:
        xs = [t for t in self.arrivals if t0_ms <= t <= t1_ms]
        gaps = [b - a for a, b in zip(xs, xs[1:])]
        return {"frames_per_s": round(len(xs) / ((t1_ms - t0_ms) / 1000), 2),
                "longest_gap_ms": round(max(gaps), 1) if gaps else None}


async def _raw_session(port: int, on_frame, query: str = "") -> _RawStream:
    loop = asyncio.get_running_loop()
    _, proto = await loop.create_connection(lambda: _RawStream(port, on_frame, query), "127.0.0.1", port)
    await asyncio.wait_for(proto.open, 30)
    return proto


async def _non_reader(port: int, stop: asyncio.Event, sent: list[int], dropped: list[int]) -> None:
    import socket as so

    s = so.socket()
    s.setsockopt(so.SOL_SOCKET, so.SO_RCVBUF, 4096)
    s.setblocking(False)
    loop = asyncio.get_running_loop()
    await loop.sock_connect(s, ("127.0.0.1", port))
    key = base64.b64encode(os.urandom(16)).decode()
    await loop.sock_sendall(s, (f"GET /ws HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\n"
                                f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
                                "Sec-WebSocket-Version: 13\r\n\r\n").encode())
    head = b""
    while b"\r\n\r\n" not in head:
        head += await loop.sock_recv(s, 1)
    await loop.sock_sendall(s, _ws_frame(b'{"type":"control","do":"configure","nodes":9}'))
    frame = _ws_frame(b'{"type":"control","do":"speed","value":0.02}')
    try:
        while not stop.is_set():
            await asyncio.wait_for(loop.sock_sendall(s, frame), 5)
            sent[0] += 1
            await asyncio.sleep(1 / 40)
    except (OSError, asyncio.TimeoutError):
        dropped[0] += 1
    finally:
        s.close()


async def abuse_phase(kind: str, port: int, pid: int, warmup_s: float, measure_s: float) -> dict:
    inn = _Innocent()
    rss0 = _rss_mb(pid)
    await _raw_session(port, inn.on_frame)
    await asyncio.sleep(warmup_s)
    out: dict = {"rss_mb_before": rss0}
    t0 = time.time() * 1000
    if kind == "readers":
        stop, sent, dropped = asyncio.Event(), [0], [0]
        tasks = [asyncio.ensure_future(_non_reader(port, stop, sent, dropped)) for _ in range(5)]
        await asyncio.sleep(measure_s)
        stop.set()
        await asyncio.gather(*tasks, return_exceptions=True)
        out.update(abusers=5, frames_sent=sent[0], abusers_dropped_by_server=dropped[0])
    elif kind == "heavy":
        link = heavy_share_link()
        heavy = [await _raw_session(port, lambda *a: None, f"?share={link}") for _ in range(2)]
        await asyncio.sleep(1.0)  # both replays under way
        from engine.scenario import parse_scenario

        from .share import encode

        light = encode(parse_scenario({"nodes": 5, "seed": 2, "duration_ms": 60_000}), 900)
        lt = _Innocent()
        opened = time.time() * 1000
        await _raw_session(port, lt.on_frame, f"?share={light}")
        while not lt.snapshots and time.time() * 1000 - opened < measure_s * 1000:
            await asyncio.sleep(0.02)
        out.update(heavy_links=2, heavy_link_chars=len(link),
                   light_link_ready_s=round((lt.snapshots[0] - opened) / 1000, 3) if lt.snapshots else None)
        await asyncio.sleep(max(0.0, measure_s - (time.time() * 1000 - t0) / 1000))
        for h in heavy:
            h.close()
    elif kind == "flood":
        refused, told = 0, [0]

        def fatal(buf, start, end, now_ms):
            if b'"fatal":true' in buf[start:end]:
                told[0] += 1

        for _ in range(1000):
            try:
                c = await _raw_session(port, fatal)
                await asyncio.sleep(0.001)  # its first frames (a refusal comes at once)
                c.close()
            except Exception:
                refused += 1
        newcomer = _Innocent()
        await _raw_session(port, newcomer.on_frame)
        await asyncio.sleep(1.0)
        out.update(connects=1000, refused_during_flood=refused + told[0],
                   newcomer_got_frames=len(newcomer.arrivals) > 0)
        await asyncio.sleep(max(0.0, measure_s - (time.time() * 1000 - t0) / 1000))
    t1 = time.time() * 1000
    out["innocent"] = inn.figures(t0, t1)
    out["rss_mb_after"] = _rss_mb(pid)
    out["rss_mb_growth"] = round(out["rss_mb_after"] - rss0, 1)
    return out


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(prog="playground bench --web", description=__doc__.split("\n\n")[0])
    ap.add_argument("--sessions", type=int, default=500)
    ap.add_argument("--click-sessions", type=int, default=200)
    ap.add_argument("--warmup-s", type=float, default=5)
    ap.add_argument("--measure-s", type=float, default=15)
    ap.add_argument("--phases", default="stream,click,fps,abuse",
                    help="comma-separated: stream, click, fps, fps-lb (the load-balancing lab), abuse")
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
                cpu0, me0, w0 = _cpu_seconds(srv.proc.pid), time.process_time(), time.monotonic()
                result["stream"] = asyncio.run(stream_phase(srv.port, a.sessions, a.warmup_s, a.measure_s))
                wall = time.monotonic() - w0
                result["stream"]["server_cpu_percent"] = round(
                    100 * (_cpu_seconds(srv.proc.pid) - cpu0) / wall, 1)
                result["stream"]["load_generator_cpu_percent"] = round(
                    100 * (time.process_time() - me0) / wall, 1)
                time.sleep(1)  # let the server notice the closed sockets
            if "click" in phases:
                result["click"] = asyncio.run(click_phase(srv.port, a.click_sessions, a.measure_s))
        finally:
            srv.stop()
    if "abuse" in phases:
        result["abuse"] = {}
        for kind in ("readers", "heavy", "flood"):
            srv = Server(lift_caps=False)
            try:
                result["abuse"][kind] = asyncio.run(abuse_phase(kind, srv.port, srv.proc.pid,
                                                                min(a.warmup_s, 3), a.measure_s))
            finally:
                srv.stop()
    if "fps" in phases:
        from .fpsbench import measure_fps

        result["fps"] = measure_fps(seconds=a.fps_seconds)
    if "fps-lb" in phases:
        from .fpsbench import measure_fps

        result["fps_lb"] = measure_fps(seconds=a.fps_seconds, lb=True)
    text = orjson.dumps(result, option=orjson.OPT_INDENT_2).decode()
    print(text)
    if a.out:
        Path(a.out).write_text(text + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
