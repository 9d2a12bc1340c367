"""The live space-time diagram: a line per node, an arrow per message, synced with the run."""

from __future__ import annotations

import pytest

from .conftest import shot
from .test_playground import canvas_state, pause

pytestmark = pytest.mark.browser


@pytest.mark.parametrize("protocol", ["raft", "paxos"])
def test_arrows_follow_the_run_and_a_click_goes_to_that_message(server, page, protocol):
    page.goto(f"{server}/?protocol={protocol}&speed=0.05")
    page.wait_for_selector("[data-node]")
    page.get_by_role("tab", name="Space-time").click()
    page.wait_for_function("Number(document.querySelector('#spacetime').dataset.arrows || 0) >= 6"
                           " && window.__playground.spacetime.arrows().filter("
                           "a => a.end != null && !a.why).length >= 3", timeout=60_000)
    pause(page)
    arrows = page.evaluate("window.__playground.spacetime.arrows()")
    nodes = set(page.evaluate("[...window.__playground.state.layout.nodes, ...window.__playground.state.layout.clients]"))
    assert arrows and all(a["from"] in nodes and a["to"] in nodes for a in arrows)
    assert all(a["end"] is None or a["end"] >= a["t0"] for a in arrows)
    delivered = [a for a in arrows if a["end"] is not None and a["why"] is None]
    assert delivered, arrows[:5]
    shot(page, f"e2e-spacetime-{protocol}")
    # Click the middle of the longest arrow drawn: the run goes to the middle of the flight of the
    # message a click there picks (the nearest arrow: `pick`, what the click handler uses).
    hit = page.evaluate("""() => {
        const st = window.__playground.spacetime, r = st.el.getBoundingClientRect();
        st.drawnAt = -1; st.draw(window.__playground.state.t, false);
        let best = null;
        for (const h of st.hits) {
            const py = (h[1] + h[3]) / 2;
            if (py < 40 || py > st.el.clientHeight - 20) continue;
            const L = Math.hypot(h[2] - h[0], h[3] - h[1]);
            if (!best || L > best.L) best = {L, h};
        }
        const px = (best.h[0] + best.h[2]) / 2, py = (best.h[1] + best.h[3]) / 2;
        const m = st.pick(px, py);
        const end = m.end == null ? m.due : m.end;
        return {x: r.left + px, y: r.top + py, t0: m.t0, end, want: Math.round(((m.t0 + end) / 2) * 1000) / 1000};
    }""")
    page.mouse.click(hit["x"], hit["y"])
    want = hit["want"]
    page.wait_for_function(f"Math.abs(Number(document.querySelector('#canvas').dataset.time) - {want}) < 1e-6"
                           " && document.querySelector('#canvas').dataset.digest.length === 16",
                           timeout=20_000)
    t, _ = canvas_state(page)
    assert hit["t0"] <= t <= hit["end"]


def test_a_crash_is_marked_on_the_node_line_and_rewind_drops_the_future(server, page):
    page.goto(f"{server}/?speed=0.05")
    page.wait_for_selector("[data-node]")
    page.get_by_role("tab", name="Space-time").click()
    page.wait_for_function("Number(document.querySelector('#spacetime').dataset.arrows || 0) >= 4",
                           timeout=60_000)
    pause(page)
    page.evaluate("window.__playground.send({type: 'action', action: {do: 'crash', node: 'n2'}})")
    page.wait_for_selector('[data-node="n2"][data-status="down"]')
    marks = page.evaluate("window.__playground.spacetime.marks")
    assert any(m[1] == "n2" and m[2] == "down" for m in marks)
    t_crash = next(m[0] for m in marks if m[1] == "n2" and m[2] == "down")
    shot(page, "e2e-spacetime-crash")
    back = round(max(0, t_crash - 50), 3)  # simulated time is whole microseconds
    page.evaluate(f"window.__playground.send({{type: 'control', do: 'seek', t: {back}}})")
    page.wait_for_function(f"Number(document.querySelector('#canvas').dataset.time) === {back}"
                           " && document.querySelector('#canvas').dataset.digest.length === 16")
    later = page.evaluate(f"window.__playground.spacetime.arrows().filter(a => a.t0 > {back}).length")
    assert later == 0
    assert not any(m[1] == "n2" and m[2] == "down" for m in page.evaluate("window.__playground.spacetime.marks"))
