"""`playground bench --scale`: private sessions on two workers sharing one Redis, then one
worker killed under load.

Starts a redis-server (no persistence) and two uvicorn workers (A and B) on free 127.0.0.1 ports,
with `PLAYGROUND_BROKER=redis://...` (so every session's recipe is kept in Redis), and
`--clients` load-generator processes (`python -m app.scalebench client SPEC`), each running its
share of `--sessions` sessions on one asyncio loop with raw WebSocket readers
(webbench._RawStream: no task and no JSON per frame), scheduled as batch tasks (SCHED_BATCH:
they stand for browsers on other machines, so their waking for a frame does not preempt the
worker that wrote it). Session i goes to worker A or B alternately; every session plays the
lesson `--lesson` at the default speed, with the playground's own quiet frames (a tick with
nothing to say sends its frame every fifth time; `--quiet-frame-every 1`: every tick a frame).

1. load (`--measure-s`): each session clicks about every `--click-every-s` seconds (crash n4,
   restart n4, partition n1+n2 from the rest, heal, in turn). Figures: frame lateness (arrival
   here - the `w` its runner stamped on the tick's `events` frame) and the server's own view of
   it (GET /api/stats on each worker); click-to-frame (the action sent -> the first frame whose
   `acts` carries it: the runner sends it at once, playing or not); Redis operations per click
   (INFO commandstats: every command Redis ran in the window, over the clicks acknowledged) and
   the recipes' round trips per click (the workers batch them, app/broker/writer.py; their
   GET /api/stats);
   the CPU of each worker, of Redis and of each load-generator process.
2. kill: every session on worker A makes one last click and pauses; the `snapshot` that answers
   the pause gives its moment `t` and `digest` (and `actions`, the clicks so far). 10 s later
   worker A is killed (SIGKILL) while B's sessions go on playing and clicking. Each of A's
   pages reattaches to B as the page does (`/ws?attach=1`, then `{"type": "attach", session,
   secret, t}`) as soon as its socket closes; B rebuilds the session from its recipe. Figures: from the kill to the
   rebuilt session's `snapshot`, p50/p99/max, and how many came back at the same `t`, `digest`
   and `actions` (all of them, or the benchmark says which did not). The page itself waits a
   second before it reconnects; that second is not counted here.

`--no-broker` runs phase 1 with each worker on its own in-process broker (no recipes, nothing
to kill): what the recipe writes cost a click.

Prints JSON (and writes it with `--out`). Everything is bounded (`--sessions` <= 2000, each phase
has a deadline) and every process started is stopped at the end. Needs `redis-server`
(`make redis`). The per-address caps are lifted for the bench's own servers only (every session
comes from 127.0.0.1), with their documented `PLAYGROUND_*` settings.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import resource
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import orjson

from .settings import Settings
from .webbench import ROOT, _cpu_seconds, _free_port, _get, _pct, _RawStream, _rss_mb, _ws_frame, \
    wait_listening

MAX_SESSIONS = 2000
KILL_DEADLINE_S = 90  # the killed worker's pages have this long to be back
# Every session of a bench comes from 127.0.0.1: the per-address caps (which exist to refuse
# exactly that) are lifted for the bench's own servers, nothing else.
BENCH_ENV = {"PLAYGROUND_BENCH_STATS": "1",
             "PLAYGROUND_MAX_SESSIONS": str(MAX_SESSIONS + 10),
             "PLAYGROUND_MAX_SESSIONS_PER_CLIENT": str(MAX_SESSIONS + 10),
             "PLAYGROUND_NEW_SESSIONS_PER_CLIENT_BURST": str(MAX_SESSIONS + 10),
             "PLAYGROUND_MAX_ROOM_VIEWERS": str(MAX_SESSIONS + 10)}
CLICKS = [{"do": "crash", "node": "n4"}, {"do": "restart", "node": "n4"},
          {"do": "partition", "groups": [["n1", "n2"]]}, {"do": "heal"}]


def dist(xs: list[float]) -> dict:
    return {"p50": _pct(xs, 50), "p90": _pct(xs, 90), "p99": _pct(xs, 99), "max": _pct(xs, 100),
            "samples": len(xs)}


class Hist:
    """Counts of values (ms) in 0.1 ms bins: a 30-minute soak's millions of frame lateness
    figures in a few thousand numbers, mergeable across processes, exact to the bin."""

    def __init__(self, counts: dict | None = None):
        self.counts: dict[int, int] = {int(k): v for k, v in (counts or {}).items()}

    def add(self, ms: float) -> None:
        k = int(round(ms * 10))
        self.counts[k] = self.counts.get(k, 0) + 1

    def merge(self, other: "Hist") -> "Hist":
        for k, v in other.counts.items():
            self.counts[k] = self.counts.get(k, 0) + v
        return self

    def __len__(self) -> int:
        return sum(self.counts.values())

    def pct(self, p: float) -> float | None:
        n = len(self)
        if not n:
            return None
        rank = min(n - 1, max(0, int(round(p / 100 * (n - 1)))))
        seen = 0
        for k in sorted(self.counts):
            seen += self.counts[k]
            if seen > rank:
                return round(k / 10, 1)
        return None  # pragma: no cover

    def dist(self) -> dict:
        return {"p50": self.pct(50), "p90": self.pct(90), "p99": self.pct(99),
                "max": self.pct(100), "samples": len(self)}

    def dump(self) -> dict:
        return {str(k): v for k, v in self.counts.items()}


def load_average() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


# --- the servers -------------------------------------------------------------------------------


class Cluster:
    """One redis-server and `workers` uvicorn workers on free loopback ports."""

    def __init__(self, workers: int = 2, env: dict | None = None):
        if shutil.which("redis-server") is None:
            raise RuntimeError("redis-server is not installed (make redis)")
        self.procs: list[subprocess.Popen] = []
        self.rport = _free_port()
        self.redis = self._start(["redis-server", "--port", str(self.rport), "--bind", "127.0.0.1",
                                  "--save", "", "--appendonly", "no"], self.rport)
        self.url = f"redis://127.0.0.1:{self.rport}/0"
        wenv = {**os.environ, **BENCH_ENV, "PLAYGROUND_BROKER": self.url, **(env or {})}
        self.ports: list[int] = []
        self.workers: list[subprocess.Popen] = []
        try:
            for _ in range(workers):
                port = _free_port()
                self.workers.append(self._start(
                    [sys.executable, "-m", "uvicorn", "app.main:app", "--host", "127.0.0.1",
                     "--port", str(port), "--ws-per-message-deflate", "false", "--log-level",
                     "warning"], port, wenv))
                self.ports.append(port)
        except BaseException:
            self.stop()
            raise

    def _start(self, cmd: list[str], port: int, env: dict | None = None) -> subprocess.Popen:
        proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL)
        self.procs.append(proc)
        if not wait_listening(port, 60):
            raise RuntimeError(f"{cmd[0]} did not start")
        return proc

    def redis_info(self, section: str) -> dict[str, str]:
        """`INFO section` as {field: value}, over a plain socket (no client state to keep)."""
        with socket.create_connection(("127.0.0.1", self.rport), timeout=5) as s:
            s.sendall(f"INFO {section}\r\n".encode())
            data = b""
            while True:
                data += s.recv(65536)
                head, _, rest = data.partition(b"\r\n")
                if head.startswith(b"$") and len(rest) >= int(head[1:]):
                    break
        out = {}
        for line in rest.decode().splitlines():
            if ":" in line and not line.startswith("#"):
                k, v = line.split(":", 1)
                out[k] = v
        return out

    def redis_calls(self) -> dict[str, int]:
        """Commands Redis has run so far, per command (INFO commandstats)."""
        calls = {}
        for k, v in self.redis_info("commandstats").items():
            fields = dict(x.split("=") for x in v.split(","))
            calls[k.removeprefix("cmdstat_")] = int(fields["calls"])
        return calls

    def cpu_seconds(self) -> dict[str, float]:
        out = {f"worker_{chr(65 + i)}": _cpu_seconds(p.pid) for i, p in enumerate(self.workers)}
        out["redis"] = _cpu_seconds(self.redis.pid)
        return out

    def rss_mb(self) -> dict[str, float]:
        out = {f"worker_{chr(65 + i)}": (_rss_mb(p.pid) if p.poll() is None else None)
               for i, p in enumerate(self.workers)}
        out["redis"] = _rss_mb(self.redis.pid)
        out["redis_used_memory_mb"] = round(int(self.redis_info("memory")["used_memory"]) / 2**20, 1)
        return out

    def stats(self, i: int, reset: bool = False) -> dict | None:
        try:
            return _get(self.ports[i], "/api/stats" + ("?reset=true" if reset else ""))
        except OSError:
            return None

    def stop(self) -> None:
        for proc in reversed(self.procs):
            if proc.poll() is None:
                proc.terminate()
        for proc in reversed(self.procs):
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()


def cpu_percent(before: dict, after: dict, wall_s: float) -> dict:
    return {k: round(100 * (after[k] - before[k]) / wall_s, 1) for k in before}


# --- the load generator's processes ------------------------------------------------------------


def spawn_clients(specs: list[dict]) -> list[subprocess.Popen]:
    """One load-generator process per spec (`python -m app.scalebench client SPEC-JSON`); each
    writes its figures to a file of its own (`proc.result_path`), read by `collect_clients`."""
    import tempfile

    procs = []
    for spec in specs:
        fd, path = tempfile.mkstemp(prefix="pg-bench-", suffix=".json")
        os.close(fd)
        proc = subprocess.Popen([sys.executable, "-m", "app.scalebench", "client",
                                 orjson.dumps({**spec, "result_path": path}).decode()], cwd=ROOT)
        proc.result_path = path
        procs.append(proc)
    return procs


def collect_clients(procs: list[subprocess.Popen], timeout_s: float) -> list[dict]:
    deadline = time.monotonic() + timeout_s
    out = []
    for p in procs:
        path = Path(p.result_path)
        try:
            p.wait(timeout=max(1.0, deadline - time.monotonic()))
            text = path.read_bytes()
            out.append(orjson.loads(text) if text.strip() else {"error": f"exit {p.returncode}"})
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()
            out.append({"error": "timed out"})
        except orjson.JSONDecodeError as e:
            out.append({"error": f"bad output: {e}"})
        finally:
            path.unlink(missing_ok=True)
    return out


def _now_ms() -> float:
    return time.time() * 1000


class _Stream(_RawStream):
    """A raw reader that also says when its connection is gone."""

    def __init__(self, port, on_frame, query="", on_lost=None):
        super().__init__(port, on_frame, query)
        self.on_lost = on_lost

    def connection_lost(self, exc) -> None:
        super().connection_lost(exc)
        if self.on_lost is not None:
            self.on_lost()

    def send(self, msg: dict) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.write(_ws_frame(orjson.dumps(msg)))


def _field(buf, start: int, end: int, key: bytes) -> bytes | None:
    """The raw value of a top-level number field near the frame's start (`"w":`, `"t":`)."""
    k = buf.find(key, start, min(end, start + 120))
    if k < 0:
        return None
    e = k + len(key)
    stop = e
    while stop < end and buf[stop] not in b",}":
        stop += 1
    return bytes(buf[e:stop])


class Page:
    """One private session as its page holds it: hello's id and secret, clicks and their acks,
    the lateness of tick frames; in the kill phase its last moment and digest, and the reattach."""

    def __init__(self, gen: "Generator", i: int, port: int):
        self.gen, self.i, self.port = gen, i, port
        self.rng = random.Random(i)
        self.sid = self.secret = None
        self.conn: _Stream | None = None
        self.sent_ms: float | None = None
        self.next_click = 0.0
        self.leaves_at = float("inf")  # the soak's turnover: when this page closes its tab
        self.clicks = 0
        self.final: dict | None = None  # the kill phase: {"t", "digest", "actions"}
        self.finalising = False
        self.back: dict | None = None
        self.lost_at: float | None = None
        self.error: str | None = None
        # As the page keeps them: clicks seen, by frame seq, until a frame's `dur` covers them
        # (sent back as `pending` on the reattach).
        self.undurable: list[tuple[int, list]] = []
        self.seen = 0  # the seq of the last frame read (the attach's `seen`)

    def on_frame(self, buf, start, end, now_ms) -> None:
        g = self.gen
        if self.sid is None:
            f = orjson.loads(bytes(buf[start:end]))
            if f["type"] == "hello":
                self.sid, self.secret = f["session"], f["secret"]
            elif f.get("fatal"):
                self.error = f["message"][:200]
            return
        head = bytes(buf[start:min(end, start + 48)])
        if self.lost_at is None:
            self.seen = int(_field(buf, start, end, b'"seq":'))
        if self.lost_at is None and self.undurable and b'"dur":' in head:
            dur = int(_field(buf, start, end, b'"dur":'))
            self.undurable = [(q, a) for q, a in self.undurable if q > dur]
        if self.lost_at is not None:  # reattached: the first snapshot is the rebuilt session
            if self.back is None and b'"snapshot"' in head:
                f = orjson.loads(bytes(buf[start:end]))
                self.back = {"ms": now_ms, "t": f["t"], "digest": f["digest"],
                             "actions": f["actions"]}
            elif self.back is None and b'"error"' in head:
                self.error = orjson.loads(bytes(buf[start:end]))["message"][:200]
            return
        if b'"events"' in head:
            if g.measuring:
                w = _field(buf, start, end, b'"w":')
                if w is not None:
                    g.late(g.lateness, g.minute_late, now_ms - float(w), now_ms)
            acts = buf.find(b'"acts":', start, end) > 0
            if acts:
                f = orjson.loads(bytes(buf[start:end]))
                self.undurable.append((f["seq"], f["acts"]))
                if "dur" in f:
                    self.undurable = [(q, a) for q, a in self.undurable if q > f["dur"]]
            if self.sent_ms is not None and acts:
                if g.measuring:
                    g.late(g.click_ms, g.minute_click, now_ms - self.sent_ms, now_ms)
                    g.acked += 1
                self.sent_ms = None
                self.clicks += 1
                self.next_click = time.monotonic() + g.click_every_s * (0.5 + self.rng.random())
        elif self.finalising and b'"snapshot"' in head:
            f = orjson.loads(bytes(buf[start:end]))
            if not f["playing"]:
                self.final = {"t": f["t"], "digest": f["digest"], "actions": f["actions"]}
                self.finalising = False
        elif b'"error"' in head and g.measuring:
            g.error(orjson.loads(bytes(buf[start:end]))["message"][:200])

    def click(self) -> None:
        self.sent_ms = _now_ms()
        self.conn.send({"type": "action", "action": CLICKS[self.clicks % len(CLICKS)]})

    def finish(self) -> None:
        """The last click, then pause: the pause's snapshot is the moment to come back to."""
        self.finalising = True
        self.conn.send({"type": "action", "action": CLICKS[self.clicks % len(CLICKS)]})
        self.conn.send({"type": "control", "do": "pause"})

    def lost(self) -> None:
        if self.final is not None and self.lost_at is None:
            self.lost_at = _now_ms()
            self.gen.spawn(self.reattach())

    async def reattach(self) -> None:
        """As the page does: /ws?attach=1 on the surviving worker, then the attach frame."""
        port = self.gen.survivor
        loop = asyncio.get_running_loop()
        for _ in range(30):
            try:
                _, c = await loop.create_connection(
                    lambda: _Stream(port, self.on_frame, "?attach=1"), "127.0.0.1", port)
                await asyncio.wait_for(c.open, 30)
                self.conn = c
                a = {"type": "attach", "session": self.sid, "secret": self.secret,
                     "t": self.final["t"], "seen": self.seen}
                pending = [x for _, acts in self.undurable for x in acts]
                if pending:
                    a["pending"] = pending
                    self.gen.pending_sent += 1
                c.send(a)
                return
            except (OSError, ConnectionError, asyncio.TimeoutError) as e:
                self.error = repr(e)[:200]
                await asyncio.sleep(1.0)


class Viewer:
    """One room follower: frames, bytes and lateness of the presenter's tick frames."""

    def __init__(self, gen: "Generator"):
        self.gen = gen
        self.frames = self.nbytes = 0
        self.error: str | None = None

    def on_frame(self, buf, start, end, now_ms) -> None:
        g = self.gen
        head = bytes(buf[start:min(end, start + 48)])
        if b'"error"' in head and buf.find(b'"fatal":true', start, end) > 0:
            self.error = orjson.loads(bytes(buf[start:end]))["message"][:200]
        if not g.measuring:
            return
        self.frames += 1
        self.nbytes += end - start
        if b'"events"' in head:
            w = _field(buf, start, end, b'"w":')
            if w is not None:
                g.late(g.viewer_late, g.viewer_minute_late, now_ms - float(w), now_ms)


class Generator:
    """One load-generator process: its pages and viewers on one asyncio loop, run by the
    wall-clock schedule its spec gives (the same for every process)."""

    def __init__(self, spec: dict):
        self.spec = spec
        self.t0 = spec["t0"]
        self.click_every_s = spec.get("click_every_s", 10.0)
        self.measuring = False
        self.lateness, self.viewer_late, self.click_ms = Hist(), Hist(), Hist()
        per_minute = spec.get("per_minute", False)
        # minute since t0 -> Hist, when the spec asks for figures minute by minute (the soak)
        self.minute_late: dict | None = {} if per_minute else None
        self.minute_click: dict | None = {} if per_minute else None
        self.viewer_minute_late: dict | None = {} if per_minute else None
        self.acked = 0
        self.pending_sent = 0  # reattaches that carried clicks Redis had not acknowledged yet
        self.errors: list[str] = []
        self.errors_count = 0
        self.pages: list[Page] = []
        self.viewers: list[Viewer] = []
        self.survivor = spec.get("survivor")
        self.lifetime_s = spec.get("page_lifetime_s", 0) or 0
        self.renewed = 0  # pages that left and were replaced by a new one (a new session)
        self._tasks: set = set()

    def error(self, message: str) -> None:
        """Kept: the first 100 messages (a long soak's repeats would fill the memory); counted: all."""
        self.errors_count += 1
        if len(self.errors) < 100:
            self.errors.append(message)

    def late(self, hist: Hist, minutes: dict | None, ms: float, now_ms: float) -> None:
        hist.add(ms)
        if minutes is not None:
            m = int((now_ms / 1000 - self.t0) // 60)
            h = minutes.get(m)
            if h is None:
                h = minutes[m] = Hist()
            h.add(ms)

    def spawn(self, coro) -> None:
        t = asyncio.ensure_future(coro)
        self._tasks.add(t)
        t.add_done_callback(self._tasks.discard)

    async def _connect(self, port: int, on_frame, query: str, on_lost=None) -> _Stream:
        loop = asyncio.get_running_loop()
        _, c = await loop.create_connection(lambda: _Stream(port, on_frame, query, on_lost),
                                            "127.0.0.1", port)
        await asyncio.wait_for(c.open, 60)
        return c

    async def open_all(self) -> None:
        sp = self.spec
        lesson = sp.get("lesson")
        q = f"?scenario={lesson}" if lesson else ""
        for i, port in sp.get("pages", []):
            p = Page(self, i, port)
            self.pages.append(p)
        for k in range(0, len(self.pages), 25):
            batch = self.pages[k:k + 25]
            conns = await asyncio.gather(*(self._connect(p.port, p.on_frame, q, p.lost)
                                           for p in batch), return_exceptions=True)
            for p, c in zip(batch, conns):
                if isinstance(c, BaseException):
                    p.error = repr(c)[:200]
                else:
                    p.conn = c
                    p.next_click = time.monotonic() + self.click_every_s * p.rng.random()
                    p.leaves_at = time.monotonic() + self.lifetime_s * (0.5 + p.rng.random())
        for port in sp.get("viewers", []):
            v = Viewer(self)
            self.viewers.append(v)
            try:
                await self._connect(port, v.on_frame, f"?room={sp['room']}")
            except (OSError, ConnectionError, asyncio.TimeoutError) as e:
                v.error = repr(e)[:200]

    async def churner(self, until: float, query: str) -> None:
        """Pages past their lifetime close their tab (no click in flight) and a new page opens a
        new session in their place, one at a time, checked every second."""
        while time.time() < until:
            now = time.monotonic()
            for p in self.pages:
                if time.time() >= until:
                    break
                if p.conn is None or p.sent_ms is not None or now < p.leaves_at:
                    continue
                old, p.conn = p.conn, None
                old.transport.close()
                p.sid = p.secret = None
                try:
                    p.conn = await self._connect(p.port, p.on_frame, query, p.lost)
                except (OSError, ConnectionError, asyncio.TimeoutError) as e:
                    p.conn = None
                    self.error(f"a new page could not connect: {e!r}"[:200])
                    continue
                self.renewed += 1
                p.next_click = time.monotonic() + self.click_every_s * p.rng.random()
                p.leaves_at = time.monotonic() + self.lifetime_s * (0.5 + p.rng.random())
            await asyncio.sleep(1.0)

    async def clicker(self, until: float) -> None:
        """Every 50 ms, the pages whose next click is due click (one in flight per page)."""
        while time.time() < until:
            now = time.monotonic()
            for p in self.pages:
                if (p.conn is not None and p.sent_ms is None and p.final is None
                        and not p.finalising and p.lost_at is None and now >= p.next_click):
                    p.click()
                elif p.sent_ms is not None and _now_ms() - p.sent_ms > 10_000:
                    self.error("a click got no frame within 10 s")
                    p.sent_ms = None  # lost: count it and go on
            await asyncio.sleep(0.05)

    async def run(self) -> dict:
        sp = self.spec
        cpu0, began = resource.getrusage(resource.RUSAGE_SELF), time.time()
        await self.open_all()
        opened = time.time()
        self.spawn(self.clicker(sp["t_end"]))
        if self.lifetime_s > 0:
            lesson = sp.get("lesson")
            self.spawn(self.churner(sp["t_end"], f"?scenario={lesson}" if lesson else ""))
        await asyncio.sleep(max(0.0, sp["t_measure0"] - time.time()))
        self.measuring = True
        cpu1 = resource.getrusage(resource.RUSAGE_SELF)
        await asyncio.sleep(max(0.0, sp["t_measure1"] - time.time()))
        self.measuring = False
        cpu2 = resource.getrusage(resource.RUSAGE_SELF)
        measured_s = sp["t_measure1"] - sp["t_measure0"]
        kill_port = sp.get("kill_port")
        if kill_port is not None:
            doomed = [p for p in self.pages if p.port == kill_port and p.conn is not None]
            for p in doomed:  # a click still in flight is answered before the pause, in order
                p.sent_ms = None
                p.finish()
            # Until every one of them is back (or cannot be: it had no moment to come back to,
            # or its reattach failed), or the deadline.
            while time.time() < sp["t_end"] and not all(
                    p.back is not None or (p.lost_at is None and time.time() > sp["t_kill"] + 10)
                    for p in doomed):
                await asyncio.sleep(0.1)
        else:
            await asyncio.sleep(max(0.0, sp["t_end"] - time.time()))
        cpu3 = resource.getrusage(resource.RUSAGE_SELF)

        def cpu(a, b):
            return (b.ru_utime + b.ru_stime) - (a.ru_utime + a.ru_stime)

        out = {"pages": len(self.pages), "viewers": len(self.viewers),
               "open_s": round(opened - began, 1),
               "pages_failed": [p.error for p in self.pages if p.conn is None][:3],
               "pages_failed_count": sum(1 for p in self.pages if p.conn is None),
               "lateness": self.lateness.dump(), "click_ms": self.click_ms.dump(),
               "acked": self.acked, "renewed": self.renewed, "pending_sent": self.pending_sent,
               "errors": self.errors[:5], "errors_count": self.errors_count,
               "cpu_percent_measuring": round(100 * cpu(cpu1, cpu2) / measured_s, 1),
               "cpu_s_total": round(cpu(cpu0, cpu3), 2)}
        if self.viewers:
            out["viewer_late"] = self.viewer_late.dump()
            out["viewer_frames"] = [v.frames for v in self.viewers]
            out["viewer_bytes"] = [v.nbytes for v in self.viewers]
            out["viewer_errors"] = sorted({v.error for v in self.viewers if v.error})[:3]
            out["viewers_failed"] = sum(1 for v in self.viewers if v.error)
        if self.minute_late is not None:
            for key in ("minute_late", "minute_click", "viewer_minute_late"):
                out[key] = {str(m): h.dump() for m, h in getattr(self, key).items()}
        if kill_port is not None:
            out["kill"] = [{"sid": p.sid, "final": p.final, "back": p.back, "lost_at": p.lost_at,
                            "error": p.error} for p in self.pages if p.port == kill_port]
        return out


def client_main(spec_json: str) -> int:
    spec = orjson.loads(spec_json)
    # The load generator stands for browsers on other machines. As an ordinary task, every frame
    # it is woken for preempts the worker that wrote it (3,700 forced switches a second per
    # worker at 2 x 500); as a batch task it never preempts on waking, and still gets its share.
    if hasattr(os, "SCHED_BATCH"):
        os.sched_setscheduler(0, os.SCHED_BATCH, os.sched_param(0))
    try:
        import uvloop

        uvloop.install()
    except ImportError:
        pass
    out = asyncio.run(asyncio.wait_for(Generator(spec).run(), spec["t_end"] - time.time() + 120))
    Path(spec["result_path"]).write_bytes(orjson.dumps(out))
    return 0


def client_specs(n_clients: int, pages: list[tuple[int, int]], common: dict) -> list[dict]:
    """Pages dealt to `n_clients` processes in turn."""
    return [{**common, "pages": pages[c::n_clients]} for c in range(n_clients)]


def merge(results: list[dict], key: str) -> list:
    return [x for r in results for x in r.get(key, [])]


def merge_hist(results: list[dict], key: str) -> Hist:
    h = Hist()
    for r in results:
        h.merge(Hist(r.get(key)))
    return h


def merge_minutes(results: list[dict], key: str) -> dict[int, Hist]:
    out: dict[int, Hist] = {}
    for r in results:
        for m, counts in r.get(key, {}).items():
            out.setdefault(int(m), Hist()).merge(Hist(counts))
    return out


# --- the benchmark -----------------------------------------------------------------------------


def run_scale(sessions: int, clients: int, warmup_s: float, measure_s: float,
              click_every_s: float, lesson: str, kill: bool, broker: bool = True,
              quiet_frame_every: int | None = None) -> dict:
    """`broker=False`: the in-process broker on each worker (no recipes; Redis runs idle), to
    see what the recipe writes cost a click; there is then nothing to kill.
    `quiet_frame_every`: the workers' PLAYGROUND_QUIET_FRAME_EVERY (None: the default)."""
    env = {} if broker else {"PLAYGROUND_BROKER": ""}
    if quiet_frame_every is not None:
        env["PLAYGROUND_QUIET_FRAME_EVERY"] = str(quiet_frame_every)
    cl = Cluster(2, env=env)
    kill = kill and broker
    try:
        a, b = cl.ports
        pages = [(i, cl.ports[i % 2]) for i in range(sessions)]
        # Opening is a replay queue on each worker: give it time in proportion to the sessions.
        open_s = 10 + sessions / 40
        start = time.time()
        t_m0 = start + open_s + warmup_s
        t_m1 = t_m0 + measure_s
        kill_at = t_m1 + 10.0  # A's pages have clicked and paused by then (or are told so)
        t_end = kill_at + (KILL_DEADLINE_S if kill else 0.0)
        common = {"t0": start, "t_measure0": t_m0, "t_measure1": t_m1, "t_end": t_end,
                  "t_kill": kill_at,
                  "lesson": lesson, "click_every_s": click_every_s,
                  "kill_port": a if kill else None, "survivor": b}
        specs = client_specs(clients, pages, common)
        procs = spawn_clients(specs)
        time.sleep(max(0.0, t_m0 - time.time()))
        # Redis's counters first, at the window's start (the clicks are counted from then):
        # a loaded worker can take a second to answer the HTTP calls after them.
        calls0, cpu0, w0, load0 = cl.redis_calls(), cl.cpu_seconds(), time.monotonic(), load_average()
        for i in range(2):
            cl.stats(i, reset=True)
        time.sleep(max(0.0, t_m1 - time.time()))
        calls1, cpu1, wall = cl.redis_calls(), cl.cpu_seconds(), time.monotonic() - w0
        server_side = {f"worker_{chr(65 + i)}": cl.stats(i) for i in range(2)}
        rss = cl.rss_mb()
        killed_ms = None
        if kill:
            time.sleep(max(0.0, kill_at - time.time()))
            killed_ms = _now_ms()
            cl.workers[0].send_signal(signal.SIGKILL)
            cl.workers[0].wait(10)
        results = collect_clients(procs, t_end - time.time() + 150)
        load1 = load_average()
    finally:
        cl.stop()
    clicks = sum(r.get("acked", 0) for r in results)
    lateness = merge_hist(results, "lateness")
    # INFO is this benchmark's own reading of the counters, not the playground's work.
    ops = {k: calls1.get(k, 0) - calls0.get(k, 0) for k in calls1 if k != "info"}
    ops = {k: v for k, v in sorted(ops.items(), key=lambda kv: -kv[1]) if v}
    total_ops = sum(ops.values())
    out = {
        "sessions": sessions, "workers": 2, "recipes_in_redis": broker,
        "quiet_frame_every": quiet_frame_every or Settings.model_fields["quiet_frame_every"].default,
        "load_generator_processes": clients, "lesson": lesson,
        "click_every_s": click_every_s, "measure_s": measure_s,
        "load_average": {"at_start": load0, "at_end": load1}, "machine_cpus": os.cpu_count(),
        "load_generator_failures": [r["error"] for r in results if "error" in r],
        "pages_failed": sum(r.get("pages_failed_count", 0) for r in results),
        "page_errors": sorted({e for r in results for e in r.get("pages_failed", []) if e})[:3],
        "client_errors": sorted({e for r in results for e in r.get("errors", [])})[:5],
        "frame_lateness_ms": lateness.dist(),
        "frame_lateness_server_ms": {k: v and v.get("lateness_ms") for k, v in server_side.items()},
        "click_to_frame_ms": merge_hist(results, "click_ms").dist(),
        # The workers' own view of a click: handled -> its frame's relay begins, the relay (the
        # recipe's write), the send; and their event loops' lag (a 10 ms timer's delay).
        "click_server_ms": {k: v and {part: v.get(f"click_{part}_ms") for part in ("to_relay", "relay", "send")}
                            for k, v in server_side.items()},
        "loop_lag_ms": {k: v and v.get("loop_lag_ms") for k, v in server_side.items()},
        "gc_full_collections": {k: v and v.get("gc_full_collections") for k, v in server_side.items()},
        "clicks": clicks, "clicks_per_s": round(clicks / measure_s, 1),
        "redis_ops_per_click": round(total_ops / clicks, 2) if clicks else None,
        "redis_sets_per_click": round(ops.get("set", 0) / clicks, 2) if clicks else None,
        "redis_ops_per_s": round(total_ops / wall, 1), "redis_ops_by_command": ops,
        # The recipes' group commit (app/broker/writer.py): round trips, and recipes in each.
        **recipe_batches(server_side, clicks),
        "cpu_percent": {**cpu_percent(cpu0, cpu1, wall),
                        "load_generators": [r.get("cpu_percent_measuring") for r in results]},
        # Frames with a `w` (ticks' frames) the pages read, per session per second.
        "tick_frames_per_s_per_session": round(len(lateness) / (sessions * measure_s), 2),
        # CPU (user + system) a worker spent per tick (a session's 50 ms of play and its frame,
        # if it sent one) while measuring: much less sensitive to what else runs than latencies.
        "worker_cpu_us_per_tick": {
            k: round(1e6 * (cpu1[k] - cpu0[k]) / v["frames"], 1) if v and v.get("frames") else None
            for k, v in server_side.items()},
        "rss_mb": rss,
    }
    if kill:
        out["kill"] = kill_figures(merge(results, "kill"), killed_ms)
        # Reattaches that carried clicks whose recipe Redis had not acknowledged when the worker
        # died (the page's `pending`, applied by the rebuild).
        out["kill"]["reattaches_with_pending_clicks"] = sum(r.get("pending_sent", 0) for r in results)
    return out


def kill_figures(rows: list[dict], killed_ms: float) -> dict:
    back_ms, noticed_ms, matched, mismatched, missing = [], [], 0, [], []
    for r in rows:
        f, b = r["final"], r["back"]
        if f is None:
            missing.append({"sid": r["sid"], "why": "no pause snapshot before the kill",
                            "error": r["error"]})
            continue
        if b is None:
            missing.append({"sid": r["sid"], "why": "not back", "error": r["error"]})
            continue
        back_ms.append(b["ms"] - killed_ms)
        noticed_ms.append(r["lost_at"] - killed_ms)
        if (b["t"], b["digest"], b["actions"]) == (f["t"], f["digest"], f["actions"]):
            matched += 1
        else:
            mismatched.append({"sid": r["sid"], "before": f, "after": {k: b[k] for k in f}})
    return {"sessions_on_killed_worker": len(rows), "back": len(back_ms),
            "same_t_digest_actions": matched, "mismatched": mismatched[:5],
            "not_back": missing[:5], "not_back_count": len(missing),
            "kill_to_snapshot_ms": dist(back_ms),
            "kill_to_socket_closed_ms": dist(noticed_ms)}


def recipe_batches(server_side: dict, clicks: int) -> dict:
    """The recipes' round trips to Redis per click, and recipes per round trip (both workers)."""
    ws = [(v or {}).get("recipe_writes") or {} for v in server_side.values()]
    batches = sum(w.get("batches", 0) for w in ws)
    recipes = sum(w.get("recipes", 0) for w in ws)
    return {"recipe_round_trips_per_click": round(batches / clicks, 3) if clicks else None,
            "recipes_per_round_trip": round(recipes / batches, 2) if batches else None}


def main(argv: list[str]) -> int:
    if argv[:1] == ["client"] and len(argv) == 2:
        return client_main(argv[1])
    ap = argparse.ArgumentParser(prog="playground bench --scale",
                                 description=__doc__.split("\n\n")[0])
    ap.add_argument("--sessions", type=int, default=1000, help="private sessions, half per worker")
    ap.add_argument("--clients", type=int, default=4, help="load-generator processes")
    ap.add_argument("--warmup-s", type=float, default=10)
    ap.add_argument("--measure-s", type=float, default=30)
    ap.add_argument("--click-every-s", type=float, default=10,
                    help="each session clicks about this often")
    ap.add_argument("--lesson", default="leader_crash_replication", help="a lesson (scenarios/NAME.json)")
    ap.add_argument("--quiet-frame-every", type=int, default=None,
                    help="the workers' PLAYGROUND_QUIET_FRAME_EVERY (1: a frame every tick, said or "
                         "not; default: the playground's own, 5)")
    ap.add_argument("--no-kill", action="store_true", help="skip the worker-kill phase")
    ap.add_argument("--no-broker", action="store_true",
                    help="each worker on its own in-process broker: no recipes (and no kill), "
                         "to compare click-to-frame without the recipe writes")
    ap.add_argument("--out", help="also write the JSON here")
    a = ap.parse_args(argv)
    if not 2 <= a.sessions <= MAX_SESSIONS:
        ap.error(f"--sessions: between 2 and {MAX_SESSIONS}")
    if not 1 <= a.clients <= 16:
        ap.error("--clients: between 1 and 16")
    if a.warmup_s + a.measure_s > 600:
        ap.error("--warmup-s + --measure-s: at most 600")
    if not (ROOT / "scenarios" / f"{a.lesson}.json").is_file():
        ap.error(f"--lesson: no scenarios/{a.lesson}.json")
    emit(run_scale(a.sessions, a.clients, a.warmup_s, a.measure_s, a.click_every_s, a.lesson,
                   not a.no_kill, broker=not a.no_broker, quiet_frame_every=a.quiet_frame_every), a.out)
    return 0


def emit(result: dict, out: str | None) -> None:
    """Print the figures as JSON, and write them to `out` too."""
    text = orjson.dumps(result, option=orjson.OPT_INDENT_2).decode()
    print(text)
    if out:
        Path(out).write_text(text + "\n")


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
