"""`playground bench --rooms`: one room followed by many viewers across two workers and one Redis.

Starts a redis-server (no persistence) and two uvicorn workers on free 127.0.0.1 ports, opens a
live session on worker A (the presenter, at the default speed), opens its room, and connects
`--viewers` followers, half to each worker. Over `--measure-s` seconds it measures, per viewer:
frames per second, bytes per second, and frame lateness (arrival here - the `w` the presenter's
runner stamped on each tick's `events` frame: the whole path presenter session -> Redis -> the
viewer's worker -> its outbox -> this process). Prints JSON. Everything is bounded and stopped at
the end; nothing leaves 127.0.0.1. Needs `redis-server` (`make redis`).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import subprocess
import sys
import time

import orjson

from .webbench import _free_port, _pct, wait_listening

MAX_VIEWERS = 1000


def _start(cmd: list[str], port: int, env: dict | None = None) -> subprocess.Popen:
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    if wait_listening(port):
        return proc
    proc.kill()
    raise RuntimeError(f"{cmd[0]} did not start")


async def _run(ports: list[int], viewers: int, warmup_s: float, measure_s: float) -> dict:
    from websockets.asyncio.client import connect

    a = ports[0]
    p = await connect(f"ws://127.0.0.1:{a}/ws", max_size=None)
    while orjson.loads(await p.recv())["type"] != "snapshot":
        pass
    await p.send(b'{"type": "control", "do": "room_open"}'.decode())
    code = None
    while code is None:
        f = orjson.loads(await p.recv())
        if f["type"] == "room":
            code = f["code"]

    async def drain_presenter():
        try:
            async for _ in p:
                pass
        except Exception:
            pass

    ptask = asyncio.ensure_future(drain_presenter())
    stats = [{"frames": 0, "bytes": 0, "late": [], "error": None} for _ in range(viewers)]
    measuring = asyncio.Event()

    async def follow(i: int):
        port = ports[i % len(ports)]
        st = stats[i]
        try:
            await _follow(port, st)
        except asyncio.CancelledError:
            raise
        except Exception as e:
            st["error"] = st["error"] or repr(e)[:200]

    async def _follow(port, st):
        async with connect(f"ws://127.0.0.1:{port}/ws?room={code}", max_size=None,
                           open_timeout=30) as v:
            async for msg in v:
                if '"fatal":true' in msg:
                    st["error"] = orjson.loads(msg)["message"][:200]
                if not measuring.is_set():
                    continue
                now = time.time() * 1000
                st["frames"] += 1
                st["bytes"] += len(msg)
                if '"w":' in msg:
                    f = orjson.loads(msg)
                    if "w" in f:
                        st["late"].append(now - f["w"])

    tasks = [asyncio.ensure_future(follow(i)) for i in range(viewers)]
    await asyncio.sleep(warmup_s)
    measuring.set()
    t0 = time.monotonic()
    await asyncio.sleep(measure_s)
    measuring.clear()
    dt = time.monotonic() - t0
    for t in tasks + [ptask]:
        t.cancel()
    await p.close()
    late = [x for s in stats for x in s["late"]]
    fps = [s["frames"] / dt for s in stats]
    bps = [s["bytes"] / dt for s in stats]
    errors = sorted({s["error"] for s in stats if s["error"]})
    return {"viewers": viewers, "workers": len(ports), "measure_s": round(dt, 1),
            "viewers_failed": sum(1 for s in stats if s["error"]), "errors": errors[:3],
            "frames_per_s_per_viewer": {"p50": _pct(fps, 50), "min": round(min(fps), 2)},
            "bytes_per_s_per_viewer": {"p50": _pct(bps, 50), "p99": _pct(bps, 99)},
            "lateness_ms": {"p50": _pct(late, 50), "p90": _pct(late, 90), "p99": _pct(late, 99),
                            "max": _pct(late, 100)}}


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(prog="playground bench --rooms")
    ap.add_argument("--viewers", type=int, default=100)
    ap.add_argument("--warmup-s", type=float, default=5)
    ap.add_argument("--measure-s", type=float, default=15)
    a = ap.parse_args(argv)
    if shutil.which("redis-server") is None:
        sys.stderr.write("playground bench --rooms: redis-server is not installed (make redis)\n")
        return 2
    viewers = max(1, min(a.viewers, MAX_VIEWERS))
    rport = _free_port()
    procs = []
    try:
        procs.append(_start(["redis-server", "--port", str(rport), "--bind", "127.0.0.1", "--save",
                             "", "--appendonly", "no"], rport))
        env = {**os.environ, "PLAYGROUND_BROKER": f"redis://127.0.0.1:{rport}/0",
               "PLAYGROUND_MAX_ROOM_VIEWERS": str(MAX_VIEWERS + 10),
               # every viewer comes from one address
               "PLAYGROUND_NEW_SESSIONS_PER_CLIENT_BURST": str(MAX_VIEWERS + 10)}
        ports = []
        for _ in range(2):
            port = _free_port()
            procs.append(_start([sys.executable, "-m", "uvicorn", "app.main:app", "--host",
                                 "127.0.0.1", "--port", str(port), "--ws-per-message-deflate",
                                 "false", "--log-level", "warning"], port, env))
            ports.append(port)
        out = asyncio.run(asyncio.wait_for(_run(ports, viewers, a.warmup_s, a.measure_s),
                                           a.warmup_s + a.measure_s + 60))
        sys.stdout.write(orjson.dumps(out, option=orjson.OPT_INDENT_2).decode() + "\n")
        return 0
    finally:
        for proc in reversed(procs):
            proc.terminate()
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
