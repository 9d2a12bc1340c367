"""End to end in headless Chromium: the page, driven the way a person would drive it.

Assertions read the stable hooks (data-node, data-role, data-term, data-link, data-cut, and the
canvas's data-time and data-digest); waits are for states, never for fixed times. Screenshots of
each scene go to artifacts/.
"""

from __future__ import annotations

import json

import pytest

from .conftest import shot

pytestmark = pytest.mark.browser

LEADER = '[data-node][data-role="leader"]'


def leader_of(page) -> tuple[str, int]:
    page.wait_for_selector(LEADER, timeout=15_000)
    el = page.locator(LEADER).first
    return el.get_attribute("data-node"), int(el.get_attribute("data-term"))


def pause(page) -> None:
    page.keyboard.press("Space")
    page.wait_for_selector('#btn-play[aria-label="Play"]')
    page.wait_for_function("document.querySelector('#canvas').dataset.digest.length === 16")


def panel_caught_up(page) -> None:
    """The side panel shows the picture the canvas shows: the same moment and, paused, the same
    digest (it redraws a few times a second, and not before a snapshot follows a hello)."""
    page.wait_for_function("(() => { const p = document.querySelector('#log-panel').dataset,"
                           " c = document.querySelector('#canvas').dataset;"
                           " return p.t === c.time && p.digest === c.digest; })()")


def canvas_state(page) -> tuple[float, str]:
    c = page.locator("#canvas")
    return float(c.get_attribute("data-time")), c.get_attribute("data-digest")


def open_share_link(page, browser):
    """Copy the page's share link and open it in a fresh context; returns (the other page, and
    the (time, digest) both must show). The caller closes `other.context`."""
    page.wait_for_function("document.querySelector('#canvas').dataset.digest.length === 16")
    here = canvas_state(page)
    page.get_by_role("button", name="Copy a share link to this moment").click()
    page.wait_for_function("document.querySelector('#share-url').dataset.url")
    url = page.locator("#share-url").get_attribute("data-url")
    other = browser.new_context(viewport={"width": 1280, "height": 720}).new_page()
    other.goto(url)
    other.wait_for_function("document.querySelector('#canvas').dataset.digest.length === 16")
    return other, here


def click_link(page, a: str, b: str, frac: float = 0.3, shift: bool = False) -> None:
    """Click on the wire between a and b, `frac` of the way from a (clear of the nodes)."""
    x, y = page.evaluate("""([a, b, f]) => {
        const w = document.querySelector(`[data-link="${a}-${b}"] .wire, [data-link="${b}-${a}"] .wire`);
        const ab = w.closest('[data-link]').dataset.link.startsWith(a + '-');
        const p = [Number(w.getAttribute('x1')), Number(w.getAttribute('y1'))];
        const q = [Number(w.getAttribute('x2')), Number(w.getAttribute('y2'))];
        const [s, e] = ab ? [p, q] : [q, p];
        const pt = w.ownerSVGElement.createSVGPoint();
        pt.x = s[0] + (e[0] - s[0]) * f; pt.y = s[1] + (e[1] - s[1]) * f;
        const r = pt.matrixTransform(w.getScreenCTM());
        return [r.x, r.y];
    }""", [a, b, frac])
    if shift:
        page.keyboard.down("Shift")
    page.mouse.click(x, y)
    if shift:
        page.keyboard.up("Shift")


def test_a_leader_appears(server, page):
    page.goto(f"{server}/?speed=1")
    nid, term = leader_of(page)
    assert term >= 1
    roles = page.locator("[data-node]").evaluate_all("els => els.map(e => e.dataset.role)")
    assert roles.count("leader") == 1 and len(roles) == 5
    assert page.locator(f'[data-node="{nid}"] .nrole').text_content() == "★ LEADER"  # not colour alone
    page.wait_for_selector("#events li", state="attached")
    assert "became leader in term" in page.locator("#events").text_content()
    shot(page, "e2e-leader")


def test_clicking_the_leader_crashes_it_and_a_new_leader_takes_over(server, page):
    page.goto(f"{server}/?speed=1")
    old, term = leader_of(page)
    page.locator(f'[data-node="{old}"]').click()
    page.get_by_role("menuitem", name=f"Crash {old}").click()
    page.wait_for_selector(f'[data-node="{old}"][data-role="down"]')
    page.wait_for_function(
        """([old, term]) => [...document.querySelectorAll('[data-node][data-role="leader"]')]
             .some(e => e.dataset.node !== old && Number(e.dataset.term) > term)""", arg=[old, term],
        timeout=15_000)
    new, new_term = page.locator(LEADER).first.get_attribute("data-node"), \
        int(page.locator(LEADER).first.get_attribute("data-term"))
    assert new != old and new_term > term
    assert "CRASHED" in page.locator(f'[data-node="{old}"] .nrole').text_content()
    assert page.locator("#events").get_by_text(f"You: crashed {old}").count() == 1
    shot(page, "e2e-crash-new-leader")


def test_cutting_links_isolates_a_node_and_the_ui_shows_it(server, page):
    page.goto(f"{server}/?speed=1")
    leader_of(page)
    pause(page)
    for other in ("n2", "n3", "n4", "n5"):
        click_link(page, "n1", other)
        page.wait_for_selector(f'[data-link="n1-{other}"][data-cut="both"]')
    cuts = page.locator('[data-link^="n1-"]').evaluate_all("els => els.map(e => e.dataset.cut)")
    assert cuts == ["both"] * 4
    others = page.locator('[data-link]:not([data-link^="n1-"])').evaluate_all("els => els.map(e => e.dataset.cut)")
    assert set(others) == {"none"}
    # A one-way cut: Shift-click near n2 blocks n2 -> n3 only.
    click_link(page, "n2", "n3", frac=0.3, shift=True)
    page.wait_for_selector('[data-link="n2-n3"][data-cut="n2>n3"]')
    # Let it run: the four others still have a leader between them; n1 is alone.
    page.keyboard.press("Space")
    page.wait_for_function(
        "() => [...document.querySelectorAll('[data-node][data-role=\"leader\"]')].some(e => e.dataset.node !== 'n1')",
        timeout=15_000)
    shot(page, "e2e-isolated-n1")
    page.get_by_role("button", name="Heal all partitions and cuts").click()
    page.wait_for_function("() => [...document.querySelectorAll('[data-link]')].every(e => e.dataset.cut === 'none')")


def test_clicking_a_cut_link_heals_it_and_shift_click_heals_one_direction(server, page):
    page.goto(f"{server}/?speed=1")
    leader_of(page)
    pause(page)
    click_link(page, "n1", "n3")
    page.wait_for_selector('[data-link="n1-n3"][data-cut="both"]')
    click_link(page, "n2", "n4")
    page.wait_for_selector('[data-link="n2-n4"][data-cut="both"]')
    assert "click to heal" in page.locator('[data-link="n1-n3"]').get_attribute("aria-label")
    # A plain click on a cut link heals it, and only it.
    click_link(page, "n1", "n3")
    page.wait_for_selector('[data-link="n1-n3"][data-cut="none"]')
    assert page.locator('[data-link="n2-n4"]').get_attribute("data-cut") == "both"
    # Shift-click near n4 lets n4 -> n2 through again; n2 -> n4 stays blocked.
    click_link(page, "n4", "n2", frac=0.3, shift=True)
    page.wait_for_selector('[data-link="n2-n4"][data-cut="n2>n4"]')
    assert page.locator("#events").get_by_text("You: healed the link n4 \u2192 n2").count() == 1
    shot(page, "e2e-heal-one-direction")
    # A link of a partition heals alone; the rest of the partition stands.
    page.get_by_role("button", name="Partition tool").click()
    page.locator('[data-node="n1"]').click()
    page.get_by_role("button", name="Partition tool").click()
    page.wait_for_selector('[data-link="n1-n2"][data-cut="both"]')
    click_link(page, "n1", "n2")
    page.wait_for_selector('[data-link="n1-n2"][data-cut="none"]')
    assert page.locator('[data-link="n1-n5"]').get_attribute("data-cut") == "both"
    # The help overlay tells how.
    page.keyboard.press("?")
    page.wait_for_selector("dialog#help[open] kbd")
    assert "heal" in page.locator("dialog#help").text_content()


def test_partition_tool_groups_nodes_by_clicking(server, page):
    page.goto(f"{server}/?speed=1")
    leader_of(page)
    pause(page)
    page.get_by_role("button", name="Partition tool").click()
    page.locator('[data-node="n1"]').click()
    page.locator('[data-node="n2"]').click()
    page.get_by_role("button", name="Partition tool").click()  # apply
    page.wait_for_selector('[data-link="n1-n3"][data-cut="both"]')
    assert page.locator('[data-link="n1-n2"]').get_attribute("data-cut") == "none"
    assert page.locator('[data-link="n3-n5"]').get_attribute("data-cut") == "none"
    assert page.locator('[data-link="n2-n4"]').get_attribute("data-cut") == "both"
    shot(page, "e2e-partition")


def test_pause_step_and_rewind(server, page):
    page.goto(f"{server}/?speed=1")
    leader_of(page)
    pause(page)
    t1, d1 = canvas_state(page)
    page.keyboard.press(".")
    page.wait_for_function(f"() => document.querySelector('#canvas').dataset.digest !== '{d1}'"
                           " && document.querySelector('#canvas').dataset.digest.length === 16")
    t2, d2 = canvas_state(page)
    assert t2 >= t1 and d2 != d1
    for _ in range(5):
        page.keyboard.press(".")
    page.wait_for_timeout(100)  # let the last steps land before reading (not a timing assertion)
    page.wait_for_function("document.querySelector('#canvas').dataset.digest.length === 16")
    t3, _ = canvas_state(page)
    assert t3 >= t2
    # Rewind with the timeline to the moment we paused: exactly the same state.
    page.locator("#scrubber").fill(str(t1))
    page.wait_for_function(f"() => Number(document.querySelector('#canvas').dataset.time) === {t1}"
                           " && document.querySelector('#canvas').dataset.digest.length === 16")
    assert canvas_state(page) == (t1, d1)
    assert page.locator("#btn-play").get_attribute("aria-label") == "Play"
    shot(page, "e2e-rewound")


def test_a_shared_link_reproduces_the_same_state(server, page, browser):
    page.goto(f"{server}/?speed=1")
    old, _ = leader_of(page)
    page.locator(f'[data-node="{old}"]').click()
    page.get_by_role("menuitem", name=f"Crash {old}").click()
    page.wait_for_selector(f'[data-node="{old}"][data-role="down"]')
    click_link(page, "n2", "n3")
    page.wait_for_selector('[data-link="n2-n3"][data-cut="both"]')
    pause(page)
    t, digest = canvas_state(page)
    page.get_by_role("button", name="Copy a share link to this moment").click()
    page.wait_for_function("document.querySelector('#share-url').dataset.url")
    url = page.locator("#share-url").get_attribute("data-url")
    assert "share=1." in url and len(url) < 2000
    other = browser.new_context(viewport={"width": 1280, "height": 720}).new_page()
    other.goto(url)
    other.wait_for_function("document.querySelector('#canvas').dataset.digest.length === 16")
    assert canvas_state(other) == (t, digest)
    assert other.locator(f'[data-node="{old}"]').get_attribute("data-role") == "down"
    assert other.locator('[data-link="n2-n3"]').get_attribute("data-cut") == "both"
    shot(other, "e2e-shared-link")
    other.context.close()


def test_projector_mode_renders_large_and_toggles(server, page):
    page.goto(f"{server}/?speed=0.05")
    page.wait_for_selector("[data-node]")
    normal = page.locator('[data-node="n1"] .nbadge').evaluate("e => parseFloat(getComputedStyle(e).fontSize)")
    shot(page, "e2e-normal")
    page.goto(f"{server}/?projector=1&speed=0.05")
    page.wait_for_selector("body.projector [data-node]")
    big = page.locator('[data-node="n1"] .nbadge').evaluate("e => parseFloat(getComputedStyle(e).fontSize)")
    assert big > normal
    assert page.locator("#btn-projector").get_attribute("aria-pressed") == "true"
    # Nothing falls off a 1280x720 screen: the page does not scroll sideways.
    assert page.evaluate("document.documentElement.scrollWidth") <= 1280
    shot(page, "e2e-projector")
    page.keyboard.press("p")
    page.wait_for_function("!document.body.classList.contains('projector')")
    assert "projector" not in page.url


def test_lesson_picker_help_and_touch(server, browser):
    ctx = browser.new_context(viewport={"width": 1280, "height": 720}, has_touch=True)
    page = ctx.new_page()
    page.goto(f"{server}/?scenario=figure8_bug")
    page.wait_for_selector("#lesson h2")
    assert page.locator("#lesson-picker").input_value() == "figure8_bug"
    assert page.locator("#lesson .suggest").count() == 1
    page.keyboard.press("?")
    page.wait_for_selector("dialog#help[open] kbd")
    page.keyboard.press("Escape")
    page.locator('[data-node="n2"]').tap()
    page.wait_for_selector('#menu:not([hidden]) [role="menuitem"]')
    shot(page, "e2e-lesson-touch-menu")
    ctx.close()


def test_message_pills_are_drawn_on_a_layer_over_the_svg_in_both_modes(server, page):
    page.goto(f"{server}/?speed=0.05")
    leader_of(page)
    page.wait_for_function("window.__playground.state.flight.size > 0")
    pause(page)
    # The pause may land in a moment with nothing in flight: step, one event at a time, to one
    # with messages on the wire (a heartbeat round sends several within a few events).
    for _ in range(200):
        if page.evaluate("window.__playground.state.flight.size") > 0:
            break
        rev = page.evaluate("window.__playground.state.flightRev")  # each snapshot bumps it
        page.locator("#btn-step").click()
        page.wait_for_function(f"window.__playground.state.flightRev > {rev}")
    assert page.evaluate("window.__playground.state.flight.size") > 0
    for projector in (False, True):
        if projector:
            page.keyboard.press("p")
            page.wait_for_function("document.body.classList.contains('projector')")
        # Poll (not a fixed wait: a busy machine may take several frames to lay out and draw).
        geo_js = """() => {
            const s = document.querySelector('#canvas').getBoundingClientRect();
            const c = document.querySelector('canvas.pill-layer');
            const r = c.getBoundingClientRect();
            const px = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
            let ink = 0; for (let i = 3; i < px.length; i += 4) if (px[i]) ink++;
            return {dx: Math.abs(s.left - r.left) + Math.abs(s.top - r.top),
                    dw: Math.abs(s.width - r.width) + Math.abs(s.height - r.height),
                    ink, pe: getComputedStyle(c).pointerEvents,
                    drawn: window.__playground.canvas.pillsDrawn,
                    flight: window.__playground.state.flight.size};
        }"""
        page.wait_for_function(f"(() => {{ const g = ({geo_js})(); return g.dx < 1 && g.dw < 1 && "
                               "g.drawn === g.flight && g.ink > 1000; })()", timeout=10_000)
        geo = page.evaluate(geo_js)
        assert geo["dx"] < 1 and geo["dw"] < 1, geo  # exactly over the SVG
        assert geo["pe"] == "none"  # clicks reach the nodes and links underneath
        assert geo["drawn"] == geo["flight"] > 0 and geo["ink"] > 1000, geo
    shot(page, "e2e-pills-projector")


LESSONS = ["clean_election", "split_vote", "leader_crash_replication", "minority_partition", "figure8",
           "figure8_bug", "nemesis"]


def seek(page, t: float) -> None:
    page.evaluate(f"window.__playground.send({{type: 'control', do: 'seek', t: {t}}})")
    page.wait_for_function(f"Number(document.querySelector('#canvas').dataset.time) === {t}"
                           " && document.querySelector('#canvas').dataset.digest.length === 16",
                           timeout=20_000)


def test_every_lesson_loads_from_the_picker_with_its_explanation_and_a_suggestion(server, page):
    page.goto(f"{server}/")
    page.wait_for_selector("[data-node]")
    for name in LESSONS:
        page.locator("#lesson-picker").select_option(name)
        page.wait_for_function(f"new URLSearchParams(location.search).get('scenario') === '{name}'")
        page.wait_for_function("document.querySelector('#lesson .notes p')"
                               " && document.querySelector('#lesson .suggest')")
        assert page.locator("#lesson h2").text_content().strip()
        assert len(page.locator("#lesson .notes").text_content()) > 80
        page.wait_for_function("document.querySelectorAll('[data-node]').length === 5")
        # The new lesson's hello, not the previous lesson's picture (paused at the same 1500).
        page.wait_for_function(f"(window.__playground.state.lesson || {{}}).name === '{name}'")
        seek(page, 1500)  # it plays: by then every lesson has a leader or is electing one
        roles = page.locator("[data-node]").evaluate_all("els => els.map(e => e.dataset.role)")
        assert "leader" in roles or "candidate" in roles, (name, roles)
        assert page.locator("#events li").count() > 0, name  # the seek told what happened in words
        shot(page, f"e2e-lesson-{name}")


def test_figure8_breaks_the_invariants_only_with_the_mutation(server, page):
    for name, broken in (("figure8", set()), ("figure8_bug", {"Leader Completeness", "State Machine Safety"})):
        page.goto(f"{server}/?scenario={name}")
        page.wait_for_selector("[data-node]")
        seek(page, 2000)
        page.get_by_role("tab", name="Invariants").click()
        states = dict(page.locator("#invariants li").evaluate_all(
            "els => els.map(e => [e.dataset.invariant, e.dataset.ok])"))
        assert {k for k, v in states.items() if v == "false"} == broken, (name, states)
        assert ("broken" in page.locator("#inv-badge").text_content()) == bool(broken)
        shot(page, f"e2e-{name}-invariants")


def test_log_entries_show_on_click_and_user_text_is_never_html(server, page):
    from engine.scenario import parse_scenario

    from app import share

    from engine.scenario import ScenarioError

    def scenario(key):
        return parse_scenario({"nodes": 3, "seed": 2, "duration_ms": 60000, "actions": [
            {"at": 50, "do": "timeout", "node": "n1"},
            {"at": 400, "do": "request", "node": "n1", "op": "write", "key": key, "value": 7}]})

    key = '"><img id=pwn src=x>'
    try:
        sc = scenario(key)
    except ScenarioError:  # the engine refuses keys that are not plain names: a plain one, then
        key = "user.key:1"
        sc = scenario(key)
    page.goto(f"{server}/?share={share.encode(sc, 900)}")
    page.wait_for_selector('[data-log-node="n1"] td[data-what]')
    assert page.locator("#pwn").count() == 0
    cell = page.locator('[data-log-node="n2"] td[data-what]').last
    cell.click()
    detail = page.locator("#log-panel .log-detail").text_content()
    assert detail.startswith("n2 index 2, term 1: w ") and key in detail
    assert page.locator("#pwn").count() == 0


def test_a_heavy_shared_link_shows_its_replay_progress_then_the_exact_state(server, page):
    from engine.scenario import parse_scenario
    from engine.sim import Simulation

    from app import share

    sc = parse_scenario({"nodes": 9, "seed": 1, "duration_ms": 3_600_000,
                         "workload": {"clients": 10, "rate_per_s": 200, "keys": 10},
                         "nemesis": {"interval_ms": 100}})
    page.goto(f"{server}/?share={share.encode(sc, 60000)}")
    progress = page.locator("#progress")
    progress.wait_for(state="visible", timeout=10_000)
    assert progress.text_content().startswith("replaying to 60.000 s")
    shot(page, "e2e-replay-progress")
    page.wait_for_function("document.querySelector('#canvas').dataset.time === '60000'", timeout=30_000)
    # The snapshot after the replay's last words hides the progress line and sets the digest.
    progress.wait_for(state="hidden", timeout=10_000)
    page.wait_for_function("document.querySelector('#canvas').dataset.digest.length === 16")
    sim = Simulation(sc)
    sim.run_until(60000)
    assert page.locator("#canvas").get_attribute("data-digest") == sim.digest()
    shot(page, "e2e-replay-done")


def test_a_page_taken_over_by_another_tab_says_so_and_does_not_reconnect(server, page, browser):
    hello = []
    page.on("websocket", lambda w: w.on(
        "framereceived", lambda p: hello.append(p) if '"type":"hello"' in str(p) else None))
    page.goto(f"{server}/?speed=1")
    page.wait_for_function("document.querySelector('#conn').dataset.state === 'live'")
    page.wait_for_timeout(300)
    first = json.loads(hello[0])
    sid = first["session"]
    ctx = browser.new_context()
    other = ctx.new_page()
    other.goto(f"{server}/healthz")
    other.evaluate("h => new Promise(ok => { const w = new WebSocket(`ws://${location.host}/ws?attach=1`);"
                   " w.onopen = () => w.send(JSON.stringify({type: 'attach', session: h.session, secret: h.secret}));"
                   " w.onmessage = () => ok(); window.w = w; })", first)
    page.wait_for_selector("#reconnect")
    assert "another tab" in page.locator("#notice").text_content()
    page.wait_for_timeout(2000)  # and it stays put: no reconnect loop stealing the session back
    assert page.locator("#conn").text_content() == "closed"
    assert len(hello) == 1
    page.click("#reconnect")  # taking it back, on request
    page.wait_for_function("document.querySelector('#conn').dataset.state === 'live'")
    assert json.loads(hello[-1])["session"] == sid
    ctx.close()


@pytest.mark.parametrize("query,drawn", [
    ("?speed=1", LEADER),  # the page's own scripts ran and drew a cluster
    ("?protocol=paxos&scenario=paxos_flexible_unsafe&speed=0.05", "#log-panel .px-unsafe"),
    ("?protocol=lb&speed=1", "#log-panel .lb-chart canvas"),  # uPlot (static/vendor/) drew
    ("?protocol=zk&scenario=zk_fencing&speed=0.5", '#log-panel .co-write[data-accepted="true"]'),
    ("?protocol=chubby&scenario=chubby_lock_delay&speed=0.5", '#log-panel tr[data-lock][data-holder="c1"]'),
], ids=["raft", "paxos", "lb", "zk", "chubby"])
def test_the_page_runs_under_its_content_security_policy(server, browser, query, drawn):
    ctx = browser.new_context(viewport={"width": 1280, "height": 720}, bypass_csp=False)
    pg = ctx.new_page()
    violations: list[str] = []
    pg.on("console", lambda m: violations.append(m.text) if "Content Security Policy" in m.text else None)
    resp = pg.goto(f"{server}/{query}")
    assert "script-src 'self'" in resp.headers["content-security-policy"]
    pg.wait_for_selector(drawn, timeout=15_000)  # the protocol's module ran and drew
    pg.keyboard.press("?")  # htmx fragments load too
    pg.wait_for_selector("#help[open]")
    assert not violations, violations
    ctx.close()


def test_a_session_the_server_lost_is_said_and_offered_back_as_a_link(server, page, browser):
    page.goto(f"{server}/?scenario=split_vote&speed=1")
    old, _ = leader_of(page)
    page.locator(f'[data-node="{old}"]').click()  # a click the link must carry
    page.get_by_role("menuitem", name=f"Crash {old}").click()
    page.wait_for_selector(f'[data-node="{old}"][data-role="down"]')
    pause(page)
    t, digest = canvas_state(page)
    # As if the server had restarted: the session id the page holds is no longer known.
    page.evaluate("() => { const p = window.__playground; p.state.session = 'gone-id'; p.ws.close(); }")
    page.wait_for_selector("#lost-link", timeout=10_000)
    notice = page.locator("#notice").text_content()
    assert "your run was lost" in notice and "split" in notice.lower()
    url = page.locator("#lost-link").get_attribute("href")
    assert "share=1." in url
    # The lesson the page had is open again (a fresh run of it)...
    page.wait_for_function("document.querySelector('#conn').dataset.state === 'live'")
    assert page.evaluate("window.__playground.state.lesson && window.__playground.state.lesson.name") == "split_vote"
    # ...and the link the page built from its frames reproduces the moment it last showed.
    other = browser.new_context(viewport={"width": 1280, "height": 720}).new_page()
    other.goto(url)
    other.wait_for_function("document.querySelector('#canvas').dataset.digest.length === 16")
    assert canvas_state(other) == (t, digest)
    other.context.close()


def waiting_ids(page) -> list[int]:
    return page.locator("#waiting-list [data-msg]").evaluate_all("els => els.map(e => Number(e.dataset.msg))")


def click_waiting_pill(page, mid: int) -> None:
    """Click the waiting pill `mid` where the canvas drew it (on the layer over the SVG)."""
    x, y = page.evaluate("""(mid) => {
        const c = window.__playground.canvas, h = c.pillHits.find((p) => p[4] === mid);
        const pt = c.svg.createSVGPoint();
        pt.x = (h[0] + h[2]) / 2; pt.y = (h[1] + h[3]) / 2;
        const r = pt.matrixTransform(c.svg.getScreenCTM());
        return [r.x, r.y];
    }""", mid)
    page.mouse.click(x, y)


def test_manual_delivery_clicks_are_actions_and_a_share_link_reproduces_them(server, page, browser):
    page.goto(f"{server}/?speed=1")
    leader_of(page)
    pause(page)
    page.keyboard.press("m")  # manual delivery on: arriving messages wait on their links
    page.wait_for_selector('#btn-manual[aria-pressed="true"]')
    page.wait_for_selector("#waiting-bar:not([hidden])")
    for _ in range(200):  # step events until three messages wait (bounded; each step is one event)
        if len(waiting_ids(page)) >= 3:
            break
        page.keyboard.press(".")
        page.wait_for_function("document.querySelector('#canvas').dataset.digest.length === 16")
    page.wait_for_function("document.querySelectorAll('#waiting-list [data-msg]').length >= 3")
    first, second, third = waiting_ids(page)[:3]
    shot(page, "e2e-manual-waiting")
    assert "waiting (manual delivery)" in page.locator("#legend").text_content()
    # Deliver one by clicking its pill on the canvas, one from the waiting list; drop a third.
    page.wait_for_function(f"window.__playground.canvas.pillHits.some((p) => p[4] === {first})")
    click_waiting_pill(page, first)
    page.get_by_role("menuitem", name="Deliver now").click()
    page.wait_for_function(f"!document.querySelector('#waiting-list [data-msg=\"{first}\"]')")
    page.locator(f'#waiting-list [data-msg="{second}"]').click()
    page.get_by_role("menuitem", name="Deliver now").click()
    page.wait_for_function(f"!document.querySelector('#waiting-list [data-msg=\"{second}\"]')")
    page.locator(f'#waiting-list [data-msg="{third}"]').focus()
    page.keyboard.press("Enter")  # the keyboard works too
    page.get_by_role("menuitem", name="Drop").click()
    page.wait_for_function(f"!document.querySelector('#waiting-list [data-msg=\"{third}\"]')")
    # A timer shown on a node fires from its menu.
    follower = page.locator('[data-node][data-role="follower"]').first.get_attribute("data-node")
    page.locator(f'[data-node="{follower}"]').click()
    page.get_by_role("menuitem", name="Fire election timer").click()
    page.wait_for_selector(f'[data-node="{follower}"][data-role="candidate"]')
    events = page.locator("#events").text_content()
    for words in (f"You: delivered message #{first}", f"You: delivered message #{second}",
                  f"You: dropped message #{third}", f"You: fired {follower}'s election timer"):
        assert words in events
    shot(page, "e2e-manual-delivery")
    other, here = open_share_link(page, browser)
    assert canvas_state(other) == here
    assert other.locator('#btn-manual').get_attribute("aria-pressed") == "true"
    other.context.close()


def test_the_protocol_chooser_and_an_unknown_protocol(server, page):
    page.goto(f"{server}/?protocol=nosuch&speed=1")
    page.wait_for_function("document.querySelector('#notice').textContent.includes('no page module')")
    assert '"nosuch"' in page.locator("#notice").text_content()
    assert page.locator("#conn").text_content() == "no protocol"
    assert page.locator("[data-node]").count() == 0  # no other protocol's look instead
    options = page.locator("#protocol-picker option").evaluate_all("els => els.map(e => e.value)")
    assert "raft" in options
    page.locator("#protocol-picker").select_option("raft")
    page.wait_for_function("new URLSearchParams(location.search).get('protocol') === 'raft'")
    page.wait_for_selector('[data-node][data-role="leader"]', timeout=15_000)
    assert page.locator("#protocol-picker").input_value() == "raft"
    html = page.content()
    assert "Raft cluster" not in page.locator("#canvas").get_attribute("aria-label")
    assert "Distributed Systems Playground" in html


def test_a_node_writing_to_stable_storage_shows_a_disk(server, page):
    """The lesson's scenario has a storage latency: a node shows the disk while a write is in
    flight, and not otherwise (engine/storage.py)."""
    page.goto(f"{server}/?scenario=figure16_top&speed=0.01")
    page.wait_for_selector(".node.disk-busy .disk", state="visible", timeout=30000)
    shot(page, "e2e-disk-indicator")
    page.wait_for_selector(".node:not(.disk-busy) .disk", state="hidden")
    pause(page)


@pytest.mark.parametrize("protocol", ["raft", "paxos", "lb", "zk", "chubby"])
def test_every_page_fits_1280_pixels_without_a_sideways_scroll(server, page, protocol):
    page.goto(f"{server}/?protocol={protocol}")
    page.wait_for_selector("[data-node]")
    assert page.evaluate("document.documentElement.scrollWidth") <= 1280
    assert page.get_by_role("button", name="Keyboard shortcuts").is_visible()
