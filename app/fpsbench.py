"""Frames per second of the page in headless Chromium: 9 nodes, at least 100 messages in flight.

The cluster is a share payload (so the run is the same every time): 9 servers, links of 300-350 ms
and a 50 ms heartbeat, so a leader's AppendEntries and their replies fill the wire (about 100-140
pills). The page plays at real time; we count requestAnimationFrame callbacks for a few seconds
while reading how many messages are drawn. Reported, not a pass/fail test.

`--lb` measures the load-balancing lab instead: 3 clients at 200 requests/s through one
balancer to 10 backends (least connections, lognormal costs), at real time, with its four live
charts (uPlot) redrawn as the metrics arrive (every 250 ms of simulated time). `--lb --compare`:
the same lab in compare mode, four algorithms side by side (four canvases of 10 backends at 200
requests/s each, the overlay chart).
"""

from __future__ import annotations

import time

from engine.scenario import parse_scenario

from . import share
from .webbench import Server

CHROMIUM = "/usr/bin/chromium"
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
        "--disable-sync", "--no-first-run"]


def busy_payload() -> str:
    sc = parse_scenario({"nodes": 9, "seed": 3, "duration_ms": 600_000,
                         "config": {"latency_ms_min": 300, "latency_ms_max": 350, "heartbeat_ms": 50,
                                    "election_timeout_ms_min": 1200, "election_timeout_ms_max": 2400},
                         "workload": {"clients": 2, "rate_per_s": 20, "keys": 2}})
    return share.encode(sc, 4000)


COMPARE = ("round_robin", "least_connections", "power_of_d", "peak_ewma")


def lb_payload(compare: bool = False) -> str:
    sc = parse_scenario({"protocol": "lb", "nodes": 10, "seed": 3, "duration_ms": 600_000,
                         "config": {"algorithm": "least_connections",
                                    "backend": {"concurrency": 2, "queue": 16},
                                    "metrics": {"interval_ms": 250, "window_ms": 2000}},
                         "workload": {"kind": "open_loop", "clients": 3, "rate_per_s": 200,
                                      "cost": {"dist": "lognormal", "mean_ms": 40, "spread": 0.8}}})
    variants = [(a, {"algorithm": a}) for a in COMPARE] if compare else None
    return share.encode(sc, 2000, variants=variants)


def measure_fps(seconds: float = 5.0, lb: bool = False, compare: bool = False) -> dict:
    from playwright.sync_api import sync_playwright

    seconds = min(max(1.0, seconds), 30.0)
    # (The load-balancing lab's state does not grow with its requests, so no operations cap
    # stops compare mode's four worlds: they play on as long as a replay's events allow.)
    srv = Server()
    try:
        with sync_playwright() as p:
            b = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=ARGS)
            # Playwright evaluates string predicates with eval, which the page's CSP forbids.
            page = b.new_page(viewport={"width": 1280, "height": 720}, bypass_csp=True)
            page.goto(f"{srv.url}/?speed=1&{'protocol=lb&' if lb else ''}share={lb_payload(compare) if lb else busy_payload()}")
            page.wait_for_function("window.__playground && window.__playground.state.flight.size > 0",
                                   timeout=20_000)
            page.keyboard.press("Space")  # play
            page.wait_for_selector('#btn-play[aria-label="Pause"]')
            if lb and compare:
                page.wait_for_function("document.querySelectorAll('svg.world-canvas').length >= 3"
                                       " && document.querySelector('#compare-plot canvas')",
                                       timeout=30_000)
            elif lb:
                page.wait_for_function("document.querySelectorAll('.lb-chart canvas').length >= 4",
                                       timeout=20_000)
            else:
                page.wait_for_function("window.__playground.state.flight.size >= 100", timeout=20_000)
            res = page.evaluate("""(ms) => new Promise((done) => {
                const sizes = []; let frames = 0; const t0 = performance.now();
                function tick(now) {
                    frames++; sizes.push(window.__playground.state.flight.size);
                    if (now - t0 < ms) requestAnimationFrame(tick);
                    else done({frames, ms: now - t0, min: Math.min(...sizes),
                               mean: sizes.reduce((a, b) => a + b, 0) / sizes.length,
                               pills: window.__playground.canvas.pillsDrawn,
                               dots: window.__playground.canvas.dotsDrawn || 0,
                               points: ((window.__playground.state.logs.lb || {}).series || {t: []}).t.length,
                               playing: window.__playground.state.playing});
                }
                requestAnimationFrame(tick);
            })""", seconds * 1000)
            page.screenshot(path=f"artifacts/fps-{'lb' if lb else '9-nodes'}.png") if _artifacts() else None
            b.close()
    finally:
        srv.stop()
    out = {"nodes": 9, "viewport": "1280x720", "seconds": round(res["ms"] / 1000, 2),
           "fps": round(res["frames"] * 1000 / res["ms"], 1),
           "messages_in_flight": {"min": res["min"], "mean": round(res["mean"], 1)},
           "pills_drawn_at_end": res["pills"], "browser": "headless Chromium (Debian), --disable-gpu"}
    if lb:
        out.update(nodes="1 balancer, 10 backends, 3 clients", rate_per_s=200, dots_drawn_at_end=res["dots"], playing_at_end=res["playing"],
                   chart_points_at_end=res["points"])
        del out["pills_drawn_at_end"]
        if compare:
            out.update(nodes=f"compare mode: {len(COMPARE)} worlds of 1 balancer, 10 backends, 3 clients",
                       worlds=list(COMPARE))
    return out


def _artifacts() -> bool:
    import os

    os.makedirs("artifacts", exist_ok=True)
    return True


if __name__ == "__main__":
    import json
    import sys

    t = time.time()
    argv = sys.argv[1:]
    print(json.dumps(measure_fps(lb="--lb" in argv, compare="--compare" in argv), indent=2))
