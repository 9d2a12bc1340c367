"""Chubby in headless Chromium: the page module (static/js/protocols/chubby.js, on coord.js) through
the seam.

Hooks: nodes carry data-kind (server | client | storage), replicas data-role (master | replica |
down) and data-epoch, clients data-holds, data-token, data-session, data-session-state (none |
opening | safe | jeopardy) and data-ring (lease | grace | none), the storage data-token and
data-value; the side panel's cell line data-master, lock rows data-lock, data-holder,
data-generation and data-delay (a lock-delay running), session rows data-client and data-state,
the storage box and its writes as for ZooKeeper. Every wait is for a state, never a time.
Screenshots go to artifacts/.
"""

from __future__ import annotations

import re

import pytest

from .conftest import shot
from .test_playground import canvas_state, open_share_link, panel_caught_up, pause, seek
from .test_zk import menu_click, play

pytestmark = pytest.mark.browser

MASTER = '[data-node][data-kind="server"][data-role="master"]'


def open_lesson(page, server, name: str, speed: float = 0.5) -> None:
    page.goto(f"{server}/?protocol=chubby&scenario={name}&speed={speed}")
    page.wait_for_selector('[data-node="st"]', timeout=20_000)
    pause(page)


def now(page) -> float:
    return canvas_state(page)[0]


def test_chubby_opens_as_a_live_cell_of_five_replicas_three_clients_and_storage(server, page):
    page.goto(f"{server}/?protocol=chubby&speed=1")
    page.wait_for_selector(MASTER, timeout=15_000)
    kinds = dict(page.locator("[data-node]").evaluate_all("els => els.map(e => [e.dataset.node, e.dataset.kind])"))
    assert kinds == {**{f"n{i}": "server" for i in range(1, 6)}, "c1": "client", "c2": "client", "c3": "client",
                     "st": "storage"}
    assert page.locator("#protocol-picker").input_value() == "chubby"
    assert page.locator(MASTER).count() == 1
    # The clients take turns with the lock and write with their sequencers.
    page.wait_for_selector('[data-kind="client"][data-holds="true"]', timeout=15_000)
    page.wait_for_selector('#log-panel .co-write[data-accepted="true"]', timeout=15_000)
    page.wait_for_selector('#log-panel .ch-cell[data-master^="n"]')
    page.wait_for_selector('[data-kind="client"][data-session-state="safe"][data-ring="lease"]')
    page.wait_for_function("[...window.__playground.state.flight.values()].some(m => /^(KeepAlive|Accept s)/.test(m[5]))")
    shot(page, "e2e-chubby-live")


def first_seen(page, selector: str, panel: bool = False, timeout: float = 20_000) -> float:
    """Play until `selector` matches; the simulated time of the frame that first showed it (read
    in the same evaluation as the match: the canvas's time, or the panel's for a panel state)."""
    clock = "#log-panel').dataset.t" if panel else "#canvas').dataset.time"
    h = page.wait_for_function(f"() => document.querySelector({selector!r}) && Number(document.querySelector('{clock})",
                               timeout=timeout)
    return h.json_value()


def style(page, selector: str, prop: str) -> str | None:
    """A computed style, looked up and read in one evaluation (the panel redraws itself)."""
    return page.evaluate("([s, p]) => { const e = document.querySelector(s); return e && getComputedStyle(e)[p]; }",
                         [selector, prop])


def inspect_at(page, t: float) -> None:
    """Pause, and go back to `t` exactly (playing on may have passed it): a state seen while
    playing is inspected at the moment it was seen, whatever the machine's speed."""
    pause(page)
    seek(page, t)
    panel_caught_up(page)


def test_the_lock_delay_lesson_shows_jeopardy_lock_delay_and_the_stale_write_when_it_says(server, page):
    # The lesson's claims: c1 is cut off at 1000 ms; jeopardy at 1249 ms; the master expires its
    # session at 1759 ms and the lock stays free for the lock-delay (to 2759 ms); c2 takes it
    # (generation 2); c1's write at 3000 ms is rejected while c1 is still in jeopardy; its grace
    # period ends at 3249 ms. Each state is waited for while playing, and its moment checked.
    open_lesson(page, server, "chubby_lock_delay", speed=0.5)
    seek(page, 950)
    panel_caught_up(page)
    assert page.locator('[data-node="c1"]').get_attribute("data-holds") == "true"
    assert page.locator('#log-panel tr[data-lock="/ls/cell/lock"]').get_attribute("data-holder") == "c1"
    play(page)
    t = first_seen(page, '[data-node="c1"][data-session-state="jeopardy"][data-ring="grace"][data-holds="true"]')
    assert 1249 <= t < 1759
    # Lock-delay: the holder's session expired, the lock is free, and nobody may take it yet.
    t = first_seen(page, '#log-panel tr[data-lock][data-holder=""][data-delay="true"]', panel=True)
    assert 1759 <= t < 2759
    inspect_at(page, t)
    row = page.locator("#log-panel tr[data-lock]")
    assert row.get_attribute("data-generation") == "1" and row.get_attribute("data-delay") == "true"
    delay = row.locator(".ch-delay")
    assert delay.text_content().startswith("free in ")
    assert style(page, "#log-panel tr[data-lock] .ch-delay", "backgroundColor") == "rgb(199, 119, 0)"  # amber
    assert page.locator('#log-panel tr[data-client="c1"]').get_attribute("data-state") == "jeopardy"
    assert page.locator('[data-node="c1"]').get_attribute("data-session-state") == "jeopardy"
    assert style(page, '[data-node="c1"] .ring', "stroke") == "rgb(196, 22, 28)"  # the grace period's red ring
    assert style(page, '[data-node="c1"] .body', "fill") == "rgb(199, 119, 0)"  # jeopardy's amber
    shot(page, "e2e-chubby-lock-delay")
    play(page)
    t = first_seen(page, '[data-node="c2"][data-holds="true"][data-token="2"]')
    assert t >= 2759
    t = first_seen(page, '#log-panel .co-write[data-accepted="false"]', panel=True)
    assert 3000 <= t < 3249
    inspect_at(page, t)
    bad = page.locator('#log-panel .co-write[data-accepted="false"]')
    assert "c1-stale" in bad.text_content() and "generation 1" in bad.text_content()
    assert style(page, '#log-panel .co-write[data-accepted="false"]', "backgroundColor") == "rgb(196, 22, 28)"
    assert page.locator("#log-panel .co-storage").get_attribute("data-token") == "2"
    assert page.locator('[data-node="c1"]').get_attribute("data-session-state") == "jeopardy"  # not yet over
    shot(page, "e2e-chubby-stale-write")
    play(page)
    t = first_seen(page, '[data-node="c1"][data-holds="false"]:not([data-session-state="jeopardy"])')
    assert t >= 3249
    pause(page)
    events = page.locator("#events").text_content()
    assert "c1's session c1.1 is in jeopardy" in events
    assert "nobody may take it for the lock-delay (1 s, until 2759 ms)" in events
    assert "st REJECTED c1's write 'c1-stale': generation 1 is older than 2" in events
    assert "c1's grace period ended after 2 s in jeopardy" in events
    page.get_by_role("tab", name="Invariants").click()
    assert page.locator('#invariants li[data-ok="false"]').count() == 0


def test_client_menus_run_recipe_steps_and_a_share_link_reproduces_the_digest(server, page, browser):
    open_lesson(page, server, "chubby_failover")
    seek(page, 400)  # sessions open, no lock asked for yet
    page.locator('[data-node="c2"]').click()
    items = page.locator('#menu [role="menuitem"]').all_text_contents()
    for want in ("Crash c2", "Pause c2 (stop the world)", "Partition c2 away from everyone", "Acquire the lock",
                 "Release the lock", "Write to the storage (sequencer, generation none)", "Close its session"):
        assert want in items, items
    page.get_by_role("menuitem", name="Acquire the lock").click()  # c2 first, this time
    page.wait_for_function("document.querySelector('#events').textContent.includes('You: asked c2 to take the lock')")
    play(page)
    page.wait_for_selector('[data-node="c2"][data-holds="true"][data-token="1"]', timeout=20_000)
    pause(page)
    menu_click(page, "c2", "Write to the storage (sequencer, generation 1)")
    play(page)
    page.wait_for_selector('#log-panel .co-write[data-accepted="true"]', timeout=20_000)
    pause(page)
    # A replica's menu: crash, pause, partition (no recipe steps); crash the master from it.
    master = page.locator(MASTER).get_attribute("data-node")
    page.locator(f'[data-node="{master}"]').click()
    items = page.locator('#menu [role="menuitem"]').all_text_contents()
    assert f"Crash {master}" in items and "Acquire the lock" not in items, items
    page.get_by_role("menuitem", name=f"Crash {master}").click()
    page.wait_for_selector(f'[data-node="{master}"][data-role="down"]')
    play(page)
    page.wait_for_selector('[data-node="c2"][data-session-state="jeopardy"]', timeout=20_000)
    page.wait_for_selector(f'{MASTER}[data-epoch="2"]', timeout=20_000)
    page.wait_for_selector('[data-node="c2"][data-session-state="safe"][data-holds="true"]', timeout=20_000)
    pause(page)
    panel_caught_up(page)
    assert page.locator("#log-panel tr[data-lock]").get_attribute("data-holder") == "c2"  # the lock survived
    page.evaluate("window.__playground.send({type: 'control', do: 'snapshot'})")
    other, here = open_share_link(page, browser)
    assert canvas_state(other) == here
    other.wait_for_selector('[data-node="c2"][data-holds="true"]')
    other.context.close()


def test_the_failover_lesson_links_to_zookeepers_and_projector_mode_keeps_the_panel(server, page):
    open_lesson(page, server, "chubby_failover")
    link = page.locator('#lesson .see-also a[data-lesson="zk_failover"]')
    link.wait_for()
    page.keyboard.press("p")
    page.wait_for_selector("body.projector")
    seek(page, 2000)
    panel_caught_up(page)
    assert page.locator("#log-panel tr[data-lock]").get_attribute("data-holder") == "c1"
    assert page.locator('#log-panel tr[data-client="c1"]').count() == 1
    shot(page, "e2e-chubby-projector")
    page.keyboard.press("p")
    page.wait_for_selector("body:not(.projector)")
    link.click()
    page.wait_for_selector('[data-node="st"]', timeout=20_000)
    assert page.locator("#protocol-picker").input_value() == "zk"
    assert page.locator("#lesson-picker").input_value() == "zk_failover"
    page.wait_for_selector('#lesson .see-also a[data-lesson="chubby_failover"]')


def test_manual_delivery_stepping_and_export_then_import_on_chubby(server, page, tmp_path):
    open_lesson(page, server, "chubby_lock_delay")
    seek(page, 600)
    t0 = now(page)
    page.keyboard.press(".")  # one event
    page.wait_for_function(f"Number(document.querySelector('#canvas').dataset.time) > {t0}")
    page.keyboard.press("m")
    page.wait_for_selector('#btn-manual[aria-pressed="true"]')
    play(page)  # messages stop where they arrive
    page.wait_for_function("window.__playground.state.waiting.size >= 2", timeout=20_000)
    pause(page)
    btn = page.locator("#waiting-list .waiting-msg").first
    assert "→" in btn.text_content()
    btn.click()
    page.get_by_role("menuitem", name="Deliver now").click()
    page.wait_for_function("document.querySelector('#events').textContent.includes('You: delivered message')")
    page.keyboard.press("m")
    page.wait_for_selector('#btn-manual[aria-pressed="false"]')
    pause_at = canvas_state(page)
    # Export the run as a trace, then import it: the same moment, the same digest.
    with page.expect_download() as dl:
        page.locator("#btn-export").click()
    path = tmp_path / "chubby.ndjson"
    dl.value.save_as(path)
    head = path.read_text().splitlines()[0]
    assert '"protocol":"chubby"' in head.replace(" ", "")
    page.set_input_files("#file-import", str(path))
    page.wait_for_function("document.querySelector('.toast') && document.querySelector('.toast').textContent.includes('Imported')",
                           timeout=20_000)
    page.wait_for_function(f"Number(document.querySelector('#canvas').dataset.time) === {pause_at[0]}"
                           f" && document.querySelector('#canvas').dataset.digest === '{pause_at[1]}'", timeout=20_000)
    shot(page, "e2e-chubby-imported")


def test_compare_mode_sets_lock_delay_beside_none_on_the_same_clicks(server, page):
    page.goto(f"{server}/?protocol=chubby&scenario=chubby_lock_delay&compare=lock-delay,no-lock-delay&speed=0.5")
    second = 'svg.world-canvas[data-variant="no-lock-delay"]'
    page.wait_for_selector(f"{second} [data-node]", timeout=20_000)
    pause(page)
    # Between the expiry (1759 ms) and the end of lock-delay (2759 ms): without it, c2 already has
    # the lock; with it, nobody has.
    page.evaluate("window.__playground.send({type: 'control', do: 'seek', t: 2000})")
    page.wait_for_function(f"""() => [document.querySelector('#canvas'), document.querySelector('{second}')]
        .every(c => c && c.dataset.time === '2000' && c.dataset.digest.length === 16)""", timeout=20_000)
    assert page.locator('#canvas [data-node="c2"]').get_attribute("data-holds") == "false"
    assert page.locator(f'{second} [data-node="c2"]').get_attribute("data-holds") == "true"
    page.wait_for_selector('#compare-summary td[data-world="no-lock-delay"][data-series="lock generation"]')
    gen = page.locator("#compare-summary td[data-series='lock generation']").all_text_contents()
    assert gen == ["1", "2"]
    shot(page, "e2e-chubby-compare")


def test_a_reconnect_never_shows_an_empty_lock_table_for_the_moment_it_is_at(server, page):
    # After a reattach the page has the hello (no nodes yet) before the snapshot: the panel must
    # wait for the snapshot, not draw a free lock table stamped with the moment the page is at.
    # The socket is routed through the test, which holds the reattach's snapshot back while the
    # page's loop turns (enough turns for several panel redraws) and then lets it through.
    hold = {"on": False, "held": []}

    def route(ws):
        srv = ws.connect_to_server()
        ws.on_message(lambda m: srv.send(m))

        def down(m):
            if hold["on"] and '"type":"snapshot"' in m:
                hold["held"].append((ws, m))
            else:
                ws.send(m)
        srv.on_message(down)

    page.route_web_socket(re.compile(r"/ws(\?|$)"), route)
    open_lesson(page, server, "chubby_lock_delay")
    seek(page, 950)
    panel_caught_up(page)
    assert page.locator('#log-panel tr[data-lock="/ls/cell/lock"]').get_attribute("data-holder") == "c1"
    digest = canvas_state(page)[1]
    page.evaluate("""() => {
      window.__panelSeen = [];
      const el = document.querySelector('#log-panel');
      new MutationObserver(() => {
        const row = el.querySelector('tr[data-lock]');
        window.__panelSeen.push([el.dataset.t, row ? row.dataset.holder : null]);
      }).observe(el, {childList: true, subtree: true});
    }""")
    hold["on"] = True
    page.evaluate("window.__playground.ws.close()")
    page.wait_for_function("window.__playground.ws.readyState === 1 && window.__playground.state.session")
    page.wait_for_function("Object.keys(window.__playground.state.nodes).length === 0")  # the hello is in
    turns = page.evaluate("window.__fps")
    page.wait_for_function(f"window.__fps > {turns + 40}")  # the page's loop turned 40 times meanwhile
    for _ in range(1000):
        if hold["held"]:
            break
        page.evaluate("0")  # let Playwright dispatch the routed socket's messages
    else:
        raise AssertionError("the reattach's snapshot never came")
    hold["on"] = False
    for ws, m in hold["held"]:
        ws.send(m)
    page.wait_for_function("Object.keys(window.__playground.state.nodes).length === 8")  # the snapshot is in
    assert canvas_state(page) == (950.0, digest)
    page.wait_for_function("window.__panelSeen.length > 0")  # the panel redrew from it
    seen = page.evaluate("window.__panelSeen")
    assert seen and all(holder == "c1" for t, holder in seen), seen
    assert page.locator('#log-panel tr[data-lock="/ls/cell/lock"]').get_attribute("data-holder") == "c1"
