"""`playground bench --rooms`: one room followed by many viewers across two workers and one Redis.

Starts a redis-server (no persistence) and two uvicorn workers on free 127.0.0.1 ports, opens a
live session on worker A (the presenter, at the default speed: 20 frames/s), opens its room, and
connects `--viewers` viewers, half to each worker, from `--clients` load-generator processes
(each holds its share of the connections on one asyncio loop, read by `webbench._RawStream`: no
task and no JSON per frame). Over `--measure-s` seconds (after `--warmup-s`) it measures, per
viewer: frames per second and bytes per second, and frame lateness (arrival at the viewer - the
`w` the presenter's runner stamped on each tick's `events` frame: the whole path presenter's
session -> Redis -> the viewer's worker -> its socket -> the client, on this machine's one clock).
It also reports the CPU (user + system, as a percentage of one core) of each worker, of Redis and
of each client process over the same seconds, so that the server's cost can be told from the
load generator's, and the load average before and after. Prints JSON. Everything is bounded
(`--viewers` at most 1,000, a deadline on every phase) and stopped at the end; nothing leaves
127.0.0.1. Needs `redis-server` (`make redis`).

    python -m app.roombench --viewers 1000          # as `playground bench --rooms --viewers 1000`
    ... --profile /tmp/worker-b.prof                 # worker B (viewers only) under cProfile
"""

from __future__ import annotations

import argparse
import asyncio
import os
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
import time

import orjson

from .webbench import ROOT, _free_port, _get, _pct, _RawStream, stamped_ms, wait_listening

MAX_VIEWERS = 1000
MAX_CLIENTS = 8


def _start(cmd: list[str], port: int, env: dict | None = None) -> subprocess.Popen:
    proc = subprocess.Popen(cmd, env=env, cwd=ROOT, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    if wait_listening(port, 60):
        return proc
    proc.kill()
    raise RuntimeError(f"{cmd[0]} did not start")


def _cpu_self() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


# --- one load-generator process ------------------------------------------------------------------
class _Follower(_RawStream):
    """A viewer's connection; remembers whether it was lost."""

    lost = False

    def connection_lost(self, exc) -> None:
        self.lost = True
        super().connection_lost(exc)


async def _client(ports: list[int], code: str, first: int, count: int) -> dict:
    """Follow room `code` with viewers `first` .. `first + count - 1` (viewer i on ports[i % 2]);
    say `ready` on stdout, read the measuring window (two wall-clock times) from stdin, measure."""
    loop = asyncio.get_running_loop()
    frames = [0] * count
    nbytes = [0] * count
    late: list[float] = []
    errors: list[str] = []
    kinds: dict[bytes, int] = {}
    window = [float("inf"), float("-inf")]  # [t0, t1) in ms since the epoch

    def reader(j: int):
        def on_frame(buf: bytearray, start: int, end: int, now_ms: float) -> None:
            if buf.find(b'"fatal":true', start, end) >= 0:
                errors.append(bytes(buf[start:min(end, start + 200)]).decode("utf-8", "replace"))
            if not window[0] <= now_ms < window[1]:
                return
            frames[j] += 1
            nbytes[j] += end - start
            k = buf.find(b'"type":"', start, min(end, start + 40))
            if k > 0:
                kind = bytes(buf[k + 8:buf.find(b'"', k + 8, end)])
                kinds[kind] = kinds.get(kind, 0) + 1
            w = stamped_ms(buf, start, end)
            if w is not None:
                late.append(now_ms - w)
        return on_frame

    conns: list[_Follower] = []
    failed = 0
    for i in range(0, count, 50):
        batch = []
        for j in range(i, min(count, i + 50)):
            port = ports[(first + j) % len(ports)]
            try:
                _, proto = await loop.create_connection(
                    lambda j=j, port=port: _Follower(port, reader(j), f"?room={code}"),
                    "127.0.0.1", port)
                batch.append(proto)
            except OSError as e:
                failed += 1
                errors.append(repr(e)[:200])
        done = await asyncio.gather(*(asyncio.wait_for(c.open, 30) for c in batch),
                                    return_exceptions=True)
        for c, d in zip(batch, done):
            if isinstance(d, BaseException):
                failed += 1
                errors.append(repr(d)[:200])
            else:
                conns.append(c)
    sys.stdout.write(f"ready {len(conns)} {failed}\n")
    sys.stdout.flush()
    line = await loop.run_in_executor(None, sys.stdin.readline)
    t0, t1 = (float(x) for x in line.split())
    window[0], window[1] = t0 * 1000, t1 * 1000
    await asyncio.sleep(max(0.0, t0 - time.time()))
    cpu0 = _cpu_self()
    await asyncio.sleep(max(0.0, t1 - time.time()))
    cpu1 = _cpu_self()
    lost = sum(1 for c in conns if c.lost)
    for c in conns:
        c.close()
    return {"connected": len(conns), "failed": failed + lost, "errors": errors[:3],
            "frames": frames, "bytes": nbytes, "kinds": {k.decode(): n for k, n in kinds.items()}, "late": [round(x, 1) for x in late],
            "cpu_s": cpu1 - cpu0}


def _client_main(argv: list[str]) -> int:
    ports, code, first, count, out_path = argv[0], argv[1], int(argv[2]), int(argv[3]), argv[4]
    try:
        import uvloop  # uvicorn[standard]'s event loop: the leanest reader we have

        uvloop.install()
    except ImportError:  # pragma: no cover
        pass
    out = asyncio.run(_client([int(p) for p in ports.split(",")], code, first, count))
    with open(out_path, "wb") as f:  # every lateness sample: too much for a pipe's one line
        f.write(orjson.dumps(out))
    sys.stdout.write("done\n")
    sys.stdout.flush()
    return 0


# uvicorn under cProfile, timed by CPU time (not wall time: on a shared machine a wall-clock
# profile mostly shows where the process was descheduled); stats written when it stops (SIGINT).
_PROFILED = """
import cProfile, sys, time
from uvicorn.main import main
sys.argv[0] = "uvicorn"
prof = cProfile.Profile(time.process_time)
prof.enable()
try:
    main()
except (SystemExit, KeyboardInterrupt):
    pass
finally:
    prof.disable()
    prof.dump_stats({out!r})
"""


def _cpu_split(pid: int) -> tuple[float, float]:
    """(user, system) CPU seconds of process `pid` so far."""
    try:
        fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
        tick = os.sysconf("SC_CLK_TCK")
        return int(fields[11]) / tick, int(fields[12]) / tick
    except (OSError, IndexError, ValueError):
        return float("nan"), float("nan")


def _run_delay_s(pid: int) -> float:
    """Seconds the main thread of `pid` has spent runnable but waiting for a CPU (schedstat)."""
    try:
        return int(open(f"/proc/{pid}/schedstat").read().split()[1]) / 1e9
    except (OSError, IndexError, ValueError):
        return float("nan")


# --- the bench -----------------------------------------------------------------------------------
async def open_room(port: int):
    """A live session on `port` with its room open: (the presenter's websocket, the room's code)."""
    from websockets.asyncio.client import connect

    p = await connect(f"ws://127.0.0.1:{port}/ws", max_size=None, compression=None)
    while orjson.loads(await p.recv())["type"] != "snapshot":
        pass
    await p.send('{"type": "control", "do": "room_open"}')
    while True:
        f = orjson.loads(await p.recv())
        if f["type"] == "room":
            return p, f["code"]


async def _presenter(port: int):
    """`open_room`, and a task reading the presenter's frames: (websocket, code, task)."""
    p, code = await open_room(port)

    async def drain():
        try:
            async for _ in p:
                pass
        except Exception:
            pass

    return p, code, asyncio.ensure_future(drain())


async def _run(ports: list[int], pids: dict[str, int], viewers: int, clients: int,
               warmup_s: float, measure_s: float) -> dict:
    p, code, ptask = await _presenter(ports[0])
    share = [viewers // clients + (1 if k < viewers % clients else 0) for k in range(clients)]
    procs = []
    first = 0
    tmp = tempfile.mkdtemp(prefix="roombench-")
    outs = [os.path.join(tmp, f"client-{k}.json") for k in range(clients)]
    for n, out in zip(share, outs):
        procs.append(await asyncio.create_subprocess_exec(
            sys.executable, "-m", "app.roombench", "--client", ",".join(map(str, ports)), code,
            str(first), str(n), out, cwd=ROOT, stdin=subprocess.PIPE, stdout=subprocess.PIPE))
        first += n
    try:
        for proc in procs:
            line = (await asyncio.wait_for(proc.stdout.readline(), 90)).decode()
            if not line.startswith("ready"):
                raise RuntimeError(f"a load-generator process did not start: {line!r}")
        t0 = time.time() + warmup_s
        t1 = t0 + measure_s
        for proc in procs:
            proc.stdin.write(f"{t0} {t1}\n".encode())
            await proc.stdin.drain()
        await asyncio.sleep(max(0.0, t0 - time.time()))
        cpu0 = {k: _cpu_split(pid) for k, pid in pids.items()}
        wait0 = {k: _run_delay_s(pid) for k, pid in pids.items()}
        await asyncio.to_thread(_get, ports[0], "/api/stats?reset=true")
        await asyncio.sleep(max(0.0, t1 - time.time()))
        cpu1 = {k: _cpu_split(pid) for k, pid in pids.items()}
        wait1 = {k: _run_delay_s(pid) for k, pid in pids.items()}
        ticks = await asyncio.to_thread(_get, ports[0], "/api/stats")
        results = []
        for proc, out in zip(procs, outs):
            line = await asyncio.wait_for(proc.stdout.readline(), 60)
            if line != b"done\n":
                raise RuntimeError(f"a load-generator process failed: {line!r}")
            with open(out, "rb") as f:
                results.append(orjson.loads(f.read()))
            await asyncio.wait_for(proc.wait(), 10)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
        for proc in procs:
            if proc.returncode is None:
                proc.kill()
                await proc.wait()
        ptask.cancel()
        await p.close()
    frames = [f for r in results for f in r["frames"]]
    nbytes = [b for r in results for b in r["bytes"]]
    late = [x for r in results for x in r["late"]]
    fps = [f / measure_s for f in frames]
    bps = [b / measure_s for b in nbytes]
    errors = sorted({e for r in results for e in r["errors"]})
    cpu = {k: round(100 * (sum(cpu1[k]) - sum(cpu0[k])) / measure_s, 1) for k in pids}
    # Load-independent: CPU time per frame delivered (worker B serves only viewers, the odd ones;
    # worker A also runs the presenter's session).
    delivered = {"worker_a": sum(frames[0::2]), "worker_b": sum(frames[1::2])}
    us_per_frame = {k: round(1e6 * (sum(cpu1[k]) - sum(cpu0[k])) / n, 1) if n else None
                    for k, n in delivered.items()}
    us_per_frame["clients"] = round(1e6 * sum(r["cpu_s"] for r in results) / max(1, sum(frames)), 1)
    sys_cpu = {k: round(100 * (cpu1[k][1] - cpu0[k][1]) / measure_s, 1) for k in pids}
    client_cpu = [round(100 * r["cpu_s"] / measure_s, 1) for r in results]
    return {"viewers": viewers, "workers": len(ports), "clients": clients,
            "measure_s": measure_s,
            "viewers_connected": sum(r["connected"] for r in results),
            "viewers_failed": sum(r["failed"] for r in results), "errors": errors[:3],
            "frames_per_s_per_viewer": {"p50": _pct(fps, 50), "min": round(min(fps), 2)},
            "frames_by_type": {k: sum(r["kinds"].get(k, 0) for r in results)
                               for k in sorted({k for r in results for k in r["kinds"]})},
            "bytes_per_s_per_viewer": {"p50": _pct(bps, 50), "p99": _pct(bps, 99)},
            "lateness_ms": {"p50": _pct(late, 50), "p90": _pct(late, 90), "p99": _pct(late, 99),
                            "max": _pct(late, 100), "samples": len(late)},
            # the presenter's own ticks on worker A: from the tick's due time to its frame sent
            # (published to Redis, then written to the presenter's socket)
            "presenter_tick_lateness_ms": ticks["lateness_ms"],
            "cpu_percent": {**cpu, "of_which_system": sys_cpu, "clients": client_cpu,
                            "clients_total": round(sum(client_cpu), 1)},
            "cpu_us_per_viewer_frame": us_per_frame,
            # the machine's other load: how long each process waited, runnable, for a CPU
            "waited_for_cpu_ms_per_s": {k: round(1000 * (wait1[k] - wait0[k]) / measure_s, 1)
                                        for k in pids},
            "server_gc_full_collections": ticks.get("gc_full_collections")}


def main(argv: list[str]) -> int:
    if argv[:1] == ["--client"]:
        return _client_main(argv[1:])
    ap = argparse.ArgumentParser(prog="playground bench --rooms", description=__doc__.split("\n\n")[0])
    ap.add_argument("--viewers", type=int, default=1000, help=f"at most {MAX_VIEWERS}")
    ap.add_argument("--clients", type=int, default=2,
                    help="load-generator processes the viewers are spread over")
    ap.add_argument("--warmup-s", type=float, default=5)
    ap.add_argument("--measure-s", type=float, default=15)
    ap.add_argument("--ws", default="auto", choices=["auto", "websockets-sansio", "websockets", "wsproto"],
                    help="uvicorn's WebSocket implementation (auto: websockets-sansio, the one the "
                         "viewers' raw write path works with; the others send through ASGI)")
    ap.add_argument("--profile", metavar="FILE",
                    help="run worker B (viewers only) under cProfile, its stats written to FILE")
    a = ap.parse_args(argv)
    if shutil.which("redis-server") is None:
        sys.stderr.write("playground bench --rooms: redis-server is not installed (make redis)\n")
        return 2
    if not 1 <= a.viewers <= MAX_VIEWERS:
        ap.error(f"--viewers: between 1 and {MAX_VIEWERS}")
    if not 1 <= a.clients <= MAX_CLIENTS:
        ap.error(f"--clients: between 1 and {MAX_CLIENTS}")
    if not (0 <= a.warmup_s <= 60 and 1 <= a.measure_s <= 120):
        ap.error("--warmup-s: at most 60; --measure-s: between 1 and 120")
    rport = _free_port()
    procs = []
    load0 = os.getloadavg()
    try:
        procs.append(_start(["redis-server", "--port", str(rport), "--bind", "127.0.0.1", "--save",
                             "", "--appendonly", "no"], rport))
        env = {**os.environ, "PLAYGROUND_BROKER": f"redis://127.0.0.1:{rport}/0",
               "PLAYGROUND_MAX_ROOM_VIEWERS": str(MAX_VIEWERS + 10), "PLAYGROUND_BENCH_STATS": "1",
               # every viewer comes from one address
               "PLAYGROUND_NEW_SESSIONS_PER_CLIENT_BURST": str(MAX_VIEWERS + 10),
               # issue 11's room figure is at 20 frames/s: every tick sends its frame, said or not
               "PLAYGROUND_QUIET_FRAME_EVERY": "1"}
        ports = []
        for w in range(2):
            port = _free_port()
            run = ["-c", _PROFILED.format(out=a.profile)] if a.profile and w == 1 else ["-m", "uvicorn"]
            procs.append(_start([sys.executable, *run, "app.main:app", "--host",
                                 "127.0.0.1", "--port", str(port), "--ws", a.ws, "--ws-per-message-deflate",
                                 "false", "--log-level", "warning"], port, env))
            ports.append(port)
        pids = {"worker_a": procs[1].pid, "worker_b": procs[2].pid, "redis": procs[0].pid}
        out = asyncio.run(asyncio.wait_for(
            _run(ports, pids, a.viewers, a.clients, a.warmup_s, a.measure_s),
            a.warmup_s + a.measure_s + 180))
        out["load_average"] = {"before": [round(x, 2) for x in load0],
                               "after": [round(x, 2) for x in os.getloadavg()]}
        out["cpus"] = os.cpu_count()
        out["ws"] = a.ws
        sys.stdout.write(orjson.dumps(out, option=orjson.OPT_INDENT_2).decode() + "\n")
        return 0
    finally:
        for proc in reversed(procs):
            # uvicorn re-raises the signal it stopped on: SIGINT ends cProfile with its stats written
            proc.send_signal(signal.SIGINT if a.profile else signal.SIGTERM)
            try:
                proc.wait(20)
            except subprocess.TimeoutExpired:
                proc.kill()


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
