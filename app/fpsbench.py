"""Frames per second of the page in headless Chromium: 9 nodes, at least 100 messages in flight.

The cluster is a share payload (so the run is the same every time): 9 servers, links of 300-350 ms
and a 50 ms heartbeat, so a leader's AppendEntries and their replies fill the wire (about 100-140
pills). The page plays at real time; we count requestAnimationFrame callbacks for a few seconds
while reading how many messages are drawn. Reported, not a pass/fail test.
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


def measure_fps(seconds: float = 5.0) -> dict:
    from playwright.sync_api import sync_playwright

    seconds = min(max(1.0, seconds), 30.0)
    srv = Server()
    try:
        with sync_playwright() as p:
            b = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=ARGS)
            page = b.new_page(viewport={"width": 1280, "height": 720})
            page.goto(f"{srv.url}/?speed=1&share={busy_payload()}")
            page.wait_for_function("window.__playground && window.__playground.state.flight.size > 0",
                                   timeout=20_000)
            page.keyboard.press("Space")  # play
            page.wait_for_function("window.__playground.state.flight.size >= 100", timeout=20_000)
            res = page.evaluate("""(ms) => new Promise((done) => {
                const sizes = []; let frames = 0; const t0 = performance.now();
                function tick(now) {
                    frames++; sizes.push(window.__playground.state.flight.size);
                    if (now - t0 < ms) requestAnimationFrame(tick);
                    else done({frames, ms: now - t0, min: Math.min(...sizes),
                               mean: sizes.reduce((a, b) => a + b, 0) / sizes.length,
                               pills: window.__playground.canvas.pillsDrawn});
                }
                requestAnimationFrame(tick);
            })""", seconds * 1000)
            page.screenshot(path="artifacts/fps-9-nodes.png") if _artifacts() else None
            b.close()
    finally:
        srv.stop()
    return {"nodes": 9, "viewport": "1280x720", "seconds": round(res["ms"] / 1000, 2),
            "fps": round(res["frames"] * 1000 / res["ms"], 1),
            "messages_in_flight": {"min": res["min"], "mean": round(res["mean"], 1)},
            "pills_drawn_at_end": res["pills"], "browser": "headless Chromium (Debian), --disable-gpu"}


def _artifacts() -> bool:
    import os

    os.makedirs("artifacts", exist_ok=True)
    return True


if __name__ == "__main__":
    import json

    t = time.time()
    print(json.dumps(measure_fps(), indent=2))
