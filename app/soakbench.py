"""`playground bench --soak --minutes N`: private sessions and one big room for N minutes, the
memory of every server process measured every minute.

Starts a redis-server and two uvicorn workers (A and B) sharing it (app/scalebench.Cluster),
a presenter (a thread of this process) on worker A playing the lesson `--lesson` with a
room open and clicking every `--click-every-s`, `--viewers` followers of that room (half on each
worker) and `--sessions` private sessions (half on each worker) playing the same lesson and
clicking about every `--click-every-s`, all read by `--clients` load-generator processes
(app/scalebench.Generator). Every minute it records the RSS of each worker and of Redis, Redis's
`used_memory`, the sessions each worker holds (GET /healthz) and the load average, and prints
one line of them to stderr; at the end, per minute, frame lateness p99 of the sessions and of the
viewers and click-to-frame p99, and whether memory stayed flat after `--warmup-minutes`: the
least-squares slope of each process's RSS over the minutes after warm-up, in MB per minute, and
its growth from the first of them to the last.

Prints JSON (and writes it with `--out`). Bounded: `--minutes` <= 120, and every process started
is stopped at the end.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import threading
import time

from .scalebench import CLICKS, ROOT, Cluster, collect_clients, client_specs, emit, \
    load_average, merge, merge_hist, merge_minutes, spawn_clients
from .webbench import _get

MAX_MINUTES = 120
# RSS growth after warm-up under which a process counts as flat (allocator noise, a few GC
# generations' worth): a slope, and a total of at most 5% or 2 MB, whichever is more.
FLAT_MB_PER_MIN = 0.5
FLAT_GROWTH_FRACTION = 0.05
FLAT_GROWTH_MB = 2.0


class Presenter(threading.Thread):
    """The room's presenter: a page on worker A that opens a room and clicks now and then."""

    def __init__(self, port: int, lesson: str, click_every_s: float):
        super().__init__(daemon=True)
        from websockets.sync.client import connect

        self.ws = connect(f"ws://127.0.0.1:{port}/ws?scenario={lesson}", max_size=None,
                          compression=None)
        self.click_every_s = click_every_s
        self.ws.send(json.dumps({"type": "control", "do": "room_open"}))
        self.code = None
        deadline = time.monotonic() + 30
        while self.code is None:
            f = json.loads(self.ws.recv(timeout=max(0.1, deadline - time.monotonic())))
            if f["type"] == "room":
                self.code = f["code"]
        self.frames = 0
        self.clicks = 0
        self.error: str | None = None
        self.stop = threading.Event()

    def run(self) -> None:
        next_click = time.monotonic() + self.click_every_s
        try:
            while not self.stop.is_set():
                try:
                    self.ws.recv(timeout=0.5)
                    self.frames += 1
                except TimeoutError:
                    pass
                if time.monotonic() >= next_click:
                    self.ws.send(json.dumps({"type": "action",
                                             "action": CLICKS[self.clicks % len(CLICKS)]}))
                    self.clicks += 1
                    next_click += self.click_every_s
        except Exception as e:  # the connection closed under it: say so in the figures
            self.error = repr(e)[:200]
        finally:
            self.ws.close()


def _sessions(port: int) -> int | None:
    try:
        return _get(port, "/healthz").get("sessions")
    except OSError:
        return None


def slope(ys: list[float]) -> float | None:
    """Least-squares slope of ys against 0, 1, 2, ... (per minute)."""
    n = len(ys)
    if n < 2:
        return None
    mx, my = (n - 1) / 2, sum(ys) / n
    return round(sum((i - mx) * (y - my) for i, y in enumerate(ys)) /
                 sum((i - mx) ** 2 for i in range(n)), 3)


def flatness(samples: list[dict], warmup: int) -> dict:
    out = {}
    after = samples[warmup:]
    for key in ("worker_A", "worker_B", "redis", "redis_used_memory_mb"):
        ys = [s["rss_mb"][key] for s in after if s["rss_mb"].get(key) is not None]
        if len(ys) < 2:
            out[key] = {"flat": None, "why": "too few minutes after warm-up"}
            continue
        sl, growth = slope(ys), round(ys[-1] - ys[0], 1)
        out[key] = {"first_mb": ys[0], "last_mb": ys[-1], "growth_mb": growth,
                    "slope_mb_per_min": sl,
                    "flat": abs(sl) <= FLAT_MB_PER_MIN
                    and growth <= max(FLAT_GROWTH_MB, FLAT_GROWTH_FRACTION * ys[0])}
    return out


def run_soak(minutes: int, sessions: int, viewers: int, clients: int, click_every_s: float,
             lesson: str, warmup_minutes: int, page_minutes: float = 0, log=sys.stderr) -> dict:
    """`page_minutes` > 0: each page closes its tab after about that long (0.5-1.5x, spread) and a
    new page opens a new session in its place, as visitors of a public link come and go; the
    closed sessions are reaped after the detached grace. 0: the same 500 pages all along."""
    # PLAYGROUND_BENCH_STATS off: its server-side lateness list grows by every tick until
    # /api/stats?reset=true (about 10 MB a minute per worker here): the soak measures the
    # server as it is deployed.
    cl = Cluster(2, env={"PLAYGROUND_BENCH_STATS": "0"})
    presenter = None
    try:
        a, b = cl.ports
        presenter = Presenter(a, lesson, click_every_s)
        presenter.start()
        pages = [(i, cl.ports[i % 2]) for i in range(sessions)]
        open_s = 15 + (sessions + viewers) / 40
        start = time.time()
        t_m0 = start + open_s
        t_end = t_m0 + minutes * 60
        common = {"t0": t_m0, "t_measure0": t_m0, "t_measure1": t_end, "t_end": t_end,
                  "lesson": lesson, "click_every_s": click_every_s, "per_minute": True,
                  "room": presenter.code, "page_lifetime_s": page_minutes * 60}
        specs = client_specs(clients, pages, common)
        for c, spec in enumerate(specs):
            spec["viewers"] = [cl.ports[k % 2] for k in range(c, viewers, clients)]
        procs = spawn_clients(specs)
        samples = []
        log.write(f"soak: {sessions} sessions, a {viewers}-viewer room (code {presenter.code}), "
                  f"{minutes} min; workers on :{a} :{b}, Redis on :{cl.rport}\n")
        log.write("minute  rss_A_mb  rss_B_mb  redis_rss_mb  redis_used_mb  sessions_A  "
                  "sessions_B  load_avg\n")
        for m in range(minutes + 1):
            time.sleep(max(0.0, t_m0 + 60 * m - time.time()))
            s = {"minute": m, "rss_mb": cl.rss_mb(), "sessions": [_sessions(p) for p in cl.ports],
                 "load_average": load_average()}
            samples.append(s)
            r = s["rss_mb"]
            log.write(f"{m:6d}  {r['worker_A']:8}  {r['worker_B']:8}  {r['redis']:12}  "
                      f"{r['redis_used_memory_mb']:13}  {s['sessions'][0]!s:>10}  "
                      f"{s['sessions'][1]!s:>10}  {s['load_average'][0]}\n")
            log.flush()
            if any(p.poll() is not None for p in cl.workers):
                log.write("soak: a worker exited; stopping\n")
                break
        results = collect_clients(procs, t_end - time.time() + 150)
    finally:
        if presenter is not None:
            presenter.stop.set()
            presenter.join(5)
        cl.stop()
    late, click, vlate = (merge_minutes(results, k) for k in
                          ("minute_late", "minute_click", "viewer_minute_late"))
    for s in samples:
        m = s["minute"] - 1  # the sample at minute m closes minute m - 1's figures
        if m >= 0:
            s["sessions_lateness_p99_ms"] = late[m].pct(99) if m in late else None
            s["click_to_frame_p99_ms"] = click[m].pct(99) if m in click else None
            s["viewers_lateness_p99_ms"] = vlate[m].pct(99) if m in vlate else None
    measured_s = minutes * 60
    vframes = merge(results, "viewer_frames")
    return {
        "minutes": minutes, "sessions": sessions, "viewers": viewers, "workers": 2,
        "load_generator_processes": clients, "lesson": lesson, "click_every_s": click_every_s,
        "page_minutes": page_minutes, "pages_renewed": sum(r.get("renewed", 0) for r in results),
        "warmup_minutes": warmup_minutes, "machine_cpus": os.cpu_count(),
        "load_generator_failures": [r["error"] for r in results if "error" in r],
        "pages_failed": sum(r.get("pages_failed_count", 0) for r in results),
        "viewers_failed": sum(r.get("viewers_failed", 0) for r in results),
        "errors": sorted({e for r in results for e in r.get("errors", []) + r.get("viewer_errors", [])})[:5],
        "presenter": {"frames": presenter.frames, "clicks": presenter.clicks,
                      "error": presenter.error},
        "clicks": sum(r.get("acked", 0) for r in results),
        "frame_lateness_ms": merge_hist(results, "lateness").dist(),
        "click_to_frame_ms": merge_hist(results, "click_ms").dist(),
        "viewer_lateness_ms": merge_hist(results, "viewer_late").dist(),
        "viewer_frames_per_s": {"min": round(min(vframes) / measured_s, 2) if vframes else None,
                                "mean": round(sum(vframes) / len(vframes) / measured_s, 2)
                                if vframes else None},
        "load_generators_cpu_percent": [r.get("cpu_percent_measuring") for r in results],
        "flat_after_warmup": flatness(samples, warmup_minutes),
        "per_minute": samples,
    }


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(prog="playground bench --soak",
                                 description=__doc__.split("\n\n")[0])
    ap.add_argument("--minutes", type=int, default=30)
    ap.add_argument("--sessions", type=int, default=500, help="private sessions, half per worker")
    ap.add_argument("--viewers", type=int, default=300, help="followers of the one room")
    ap.add_argument("--clients", type=int, default=4, help="load-generator processes")
    ap.add_argument("--click-every-s", type=float, default=10)
    ap.add_argument("--warmup-minutes", type=int, default=5)
    ap.add_argument("--lesson", default="leader_crash_replication", help="a lesson (scenarios/NAME.json)")
    ap.add_argument("--page-minutes", type=float, default=0,
                    help="each page leaves after about this long and a new one takes its place "
                         "(a new session); 0: the same pages all along")
    ap.add_argument("--out", help="also write the JSON here")
    a = ap.parse_args(argv)
    if not 1 <= a.minutes <= MAX_MINUTES:
        ap.error(f"--minutes: between 1 and {MAX_MINUTES}")
    if not (1 <= a.sessions <= 2000 and 0 <= a.viewers <= 1000 and 1 <= a.clients <= 16):
        ap.error("--sessions 1..2000, --viewers 0..1000, --clients 1..16")
    if not 0 <= a.warmup_minutes < a.minutes:
        ap.error("--warmup-minutes: from 0 to fewer than --minutes")
    if not 0 <= a.page_minutes <= MAX_MINUTES:
        ap.error(f"--page-minutes: from 0 (no turnover) to {MAX_MINUTES}")
    if not (ROOT / "scenarios" / f"{a.lesson}.json").is_file():
        ap.error(f"--lesson: no scenarios/{a.lesson}.json")
    emit(run_soak(a.minutes, a.sessions, a.viewers, a.clients, a.click_every_s, a.lesson,
                  a.warmup_minutes, a.page_minutes), a.out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
