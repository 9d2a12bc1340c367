"""The load-balancing lab in headless Chromium: the page module (static/js/protocols/lb.js)
through the seam. Hooks: data-node, data-status and data-out ("down", "ejected", "unhealthy")
on nodes, data-kind/in-flight/queue/served on backends, the canvas's data-time and data-digest,
the panel's controls (name="lb-...") and its charts (.lb-chart, drawn by uPlot).
Screenshots go to artifacts/."""

from __future__ import annotations

import numpy
import pytest

from app import share
from engine.protocols.lb.metrics import QUANTILES, metrics_of
from engine.sim import Simulation

from .conftest import shot
from .test_playground import canvas_state, open_share_link, pause

pytestmark = pytest.mark.browser


def wait_ready(page) -> None:
    page.wait_for_selector('[data-node="b1"][data-kind="backend"]', timeout=20_000)
    page.wait_for_selector(".lb-chart canvas", timeout=20_000)


def sim_time(page) -> float:
    return float(page.locator("#canvas").get_attribute("data-time"))


def open_with(page, server, switch: str, after_ms: float) -> None:
    """A live lab with one of its boxes ticked (which restarts the run), played past `after_ms`."""
    page.goto(f"{server}/?protocol=lb&speed=1")
    wait_ready(page)
    page.check(f'input[name="lb-{switch}"]')
    page.wait_for_function(f"window.__playground.state.extras.{switch} === true")
    page.wait_for_function(f"Number(document.querySelector('#canvas').dataset.time) > {after_ms}", timeout=20_000)


def node_menu(page, node: str, item: str) -> None:
    page.locator(f'[data-node="{node}"]').click()
    page.get_by_role("menuitem", name=item).click()


def test_the_lab_draws_fleet_dots_and_live_charts(server, page):
    page.goto(f"{server}/?protocol=lb&speed=1")
    wait_ready(page)
    assert page.locator(".client[data-client]").count() == 3
    assert page.locator('[data-node][data-kind="backend"]').count() == 5
    # Requests travel as dots, and the charts have data (uPlot's own arrays, as drawn).
    page.wait_for_function("window.__playground.canvas.dotsDrawn > 0")
    page.wait_for_function("(() => { const c = window.__playground.state.logs.lb.charts;"
                           " return c && c.lat.data[0].length >= 4 && c.load.data.length === 6"
                           " && c.hist.data[1].some((x) => x > 0); })()", timeout=20_000)
    assert page.locator(".lb-chart canvas").count() >= 4
    shot(page, "e2e-lb-live")


def test_a_backend_crashed_from_its_menu_is_shown_out_and_gets_no_more_requests(server, page):
    open_with(page, server, "health", 1500)  # health checks on
    node_menu(page, "b3", "Crash b3")
    page.wait_for_selector('[data-node="b3"][data-status="down"][data-out="down"]')
    # The balancer's health checks notice (two missed probes), and then nothing goes to b3.
    page.wait_for_function("!window.__playground.state.nodes.lb1.healthy.includes('b3')", timeout=20_000)
    t0 = sim_time(page)
    page.wait_for_function(f"Number(document.querySelector('#canvas').dataset.time) > {t0 + 1500}", timeout=20_000)
    sent = page.evaluate(f"""() => new Promise((done) => {{
        let n = 0, frames = 0;
        (function look() {{
            for (const m of window.__playground.state.flight.values())
                if (m[2] === 'b3' && m[6] === 'work' && m[3] > {t0}) n++;
            if (++frames < 60) requestAnimationFrame(look); else done(n);
        }})();
    }})""")
    assert sent == 0
    assert "crashed b3" in page.locator("#events").text_content()
    shot(page, "e2e-lb-crash")


def test_an_algorithm_switch_and_a_slowed_backend_replay_from_a_share_link(server, page, browser):
    page.goto(f"{server}/?protocol=lb&speed=1")
    wait_ready(page)
    page.wait_for_function("Number(document.querySelector('#canvas').dataset.time) > 500", timeout=20_000)
    page.select_option('select[name="lb-algorithm"]', "least_connections")  # an action, mid-run
    page.wait_for_function("window.__playground.state.nodes.lb1.algorithm === 'least_connections'")
    node_menu(page, "b2", "Slow b2 to ×0.1")
    page.wait_for_function("window.__playground.state.timeline.length === 2")
    page.wait_for_function("Number(document.querySelector('#canvas').dataset.time) > 2500", timeout=20_000)
    pause(page)
    other, here = open_share_link(page, browser)
    assert canvas_state(other) == here
    assert other.evaluate("window.__playground.state.nodes.lb1.algorithm") == "least_connections"
    assert other.locator("#protocol-picker").input_value() == "lb"  # the link names its protocol
    assert other.evaluate("window.__playground.state.nodes.b2.speed") == pytest.approx(0.1)
    other.context.close()


def test_the_charted_percentiles_are_numpys_on_the_same_samples(server, page):
    page.goto(f"{server}/?protocol=lb&speed=1")
    wait_ready(page)
    page.wait_for_function("(window.__playground.state.logs.lb.charts || {lat: {data: [[]]}}).lat.data[0].length >= 8",
                           timeout=20_000)
    pause(page)
    page.wait_for_function("window.__playground.state.logs.lb.drawn === window.__playground.state.logs.lb.rev")
    shown = page.evaluate("window.__playground.state.logs.lb.charts.lat.data")
    payload = page.evaluate("window.__playground.sharePayload()")
    sc, t, _ = share.decode(payload)
    sim = Simulation(sc.with_(actions=[]))
    done = []
    sim.subscribe(lambda r: done.append((r["t"], r["latency_ms"]))
                  if r["type"] == "request" and r["event"] == "done" else None, messages=False)
    sim.run_until(t)
    window = sc.config.metrics.window_ms
    assert [r["t"] / 1000 for r in metrics_of(sim).out] == shown[0]
    for i, ts in enumerate(shown[0]):
        xs = [x for tt, x in done if ts * 1000 - window <= tt < ts * 1000]
        for col, (_, q) in enumerate(QUANTILES, start=1):
            assert shown[col][i] == pytest.approx(numpy.percentile(xs, q), abs=1e-3)


def test_projector_mode_keeps_the_lab_readable(server, page):
    page.goto(f"{server}/?protocol=lb&scenario=lb_heterogeneous_rr&speed=1&projector=1")
    wait_ready(page)
    page.wait_for_function("window.__playground.state.logs.lb.charts.lat.data[0].length >= 8", timeout=20_000)
    assert page.locator(".lb-panel").get_attribute("data-projector") == "true"
    shot(page, "e2e-lb-projector")


def test_manual_delivery_holds_requests_as_pills_to_deliver_by_hand(server, page):
    page.goto(f"{server}/?protocol=lb&speed=0.2")
    wait_ready(page)
    page.keyboard.press("m")
    page.wait_for_selector("#waiting-list button.waiting-msg", timeout=20_000)
    page.wait_for_function("window.__playground.canvas.pillsDrawn > 0")  # waiting: pills, not dots
    pause(page)  # (while playing, new arrivals keep redrawing the list)
    first = page.locator("#waiting-list button.waiting-msg").first
    mid = int(first.get_attribute("data-msg"))
    first.click()
    page.get_by_role("menuitem", name="Deliver now").click()
    page.wait_for_function(f"!window.__playground.state.waiting.has({mid})")
    assert any(a["do"] == "deliver" for a in page.evaluate("window.__playground.state.timeline"))
    shot(page, "e2e-lb-manual")


def test_a_paused_backend_is_ejected_by_outlier_detection_and_drawn_out(server, page):
    open_with(page, server, "outlier", 500)  # passive ejection on
    node_menu(page, "b4", "Pause b4 (it stops answering, probes too)")
    page.wait_for_selector('[data-node="b4"][data-status="paused"]')
    # Its tries time out; five in a row and the balancer ejects it: drawn out, and said so.
    page.wait_for_selector('[data-node="b4"][data-out="ejected"]', timeout=30_000)
    assert page.locator('[data-node="b4"] .lb-outt').text_content() == "EJECTED"
    page.wait_for_function("[...document.querySelectorAll('#events li')].some((li) => li.textContent.includes('ejected b4'))")
    shot(page, "e2e-lb-ejected")


def test_a_long_run_charts_the_window_the_world_keeps_live_and_after_a_reload(server, page):
    """Past the old operations cap (25 s at 200 requests/s) and past the history the world keeps
    (240 records, a minute): the link opens at 70 s, plays on, and what the charts hold, snapshot
    then live appends, is exactly the world's latest records (the page drops the oldest)."""
    from app.settings import Settings
    from app.protocols import get_adapter
    from engine.scenario import parse_scenario

    data = get_adapter("lb").default_scenario(Settings(), 3)
    data["workload"]["rate_per_s"] = 200
    sc = parse_scenario(data)
    page.goto(f"{server}/?protocol=lb&speed=1&share={share.encode(sc, 70_000)}")
    wait_ready(page)
    page.wait_for_function("Number(document.querySelector('#canvas').dataset.time) === 70000", timeout=60_000)
    page.keyboard.press("Space")  # play on: live frames append to the window
    page.wait_for_function("Number(document.querySelector('#canvas').dataset.time) > 71500", timeout=20_000)
    pause(page)
    page.wait_for_function("window.__playground.state.logs.lb.drawn === window.__playground.state.logs.lb.rev")
    shown = page.evaluate("window.__playground.state.logs.lb.charts.lat.data[0]")
    t = sim_time(page)
    sim = Simulation(sc)
    sim.run_until(t)
    kept = [r["t"] / 1000 for r in metrics_of(sim).out]
    assert len(kept) >= 240 and shown == kept[-len(shown):] and len(shown) == 240
    assert shown[0] > 10  # a sliding window, not the run since 0
    shot(page, "lb-long-run")
