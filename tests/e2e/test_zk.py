"""ZooKeeper in headless Chromium: the page module (static/js/protocols/zk.js, on coord.js) through
the seam.

Hooks: nodes carry data-kind (server | client | storage), clients data-holds, data-token,
data-session and data-lock-node, the storage data-token and data-value; the side panel's tree rows
data-znode (and data-client, data-head on the lock's holder), the storage box data-token and
data-value, its writes data-accepted and data-stale, the notification count data-woken.
Screenshots go to artifacts/.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from .conftest import ARTIFACTS, shot
from .test_playground import canvas_state, open_share_link, panel_caught_up, pause, seek

pytestmark = pytest.mark.browser

LESSONS = sorted(p.stem for p in (Path(__file__).resolve().parents[2] / "scenarios").glob("zk_*.json"))
LEADER = '[data-node][data-kind="server"][data-role="leading"][data-phase="broadcast"]'
C1_NODE = "/lock/c1-1-lock-0000000000"


def open_lesson(page, server, name: str, speed: float = 0.5) -> None:
    page.goto(f"{server}/?protocol=zk&scenario={name}&speed={speed}")
    page.wait_for_selector('[data-node="st"]', timeout=20_000)
    pause(page)


def play(page) -> None:
    """Play by the button (a Space right after a menu click may still go to the menu's button)."""
    page.locator("#btn-play").click()
    page.wait_for_selector('#btn-play[aria-label="Pause"]')


def menu_click(page, node: str, item: str) -> None:
    page.locator(f'[data-node="{node}"]').click()
    page.get_by_role("menuitem", name=item).click()


def test_zk_opens_as_a_live_ensemble_with_clients_and_storage(server, page):
    page.goto(f"{server}/?protocol=zk&speed=1")
    page.wait_for_selector(LEADER, timeout=15_000)
    kinds = page.locator("[data-node]").evaluate_all("els => els.map(e => [e.dataset.node, e.dataset.kind])")
    assert dict(kinds) == {"n1": "server", "n2": "server", "n3": "server", "c1": "client", "c2": "client",
                           "c3": "client", "st": "storage"}
    assert page.locator("#protocol-picker").input_value() == "zk"
    # The clients take turns with the lock: someone holds it, the tree shows its node, the storage
    # accepts tokens.
    page.wait_for_selector('[data-kind="client"][data-holds="true"]', timeout=15_000)
    page.wait_for_selector("#log-panel tr[data-head]", timeout=15_000)
    page.wait_for_selector('#log-panel .co-write[data-accepted="true"]', timeout=15_000)
    page.wait_for_function("[...window.__playground.state.flight.values()].some(m => /^(PROPOSE|COMMIT|ACK) 1\\.\\d/.test(m[5]))")
    shot(page, "e2e-zk-live")


def test_lock_handover_when_the_holder_dies_from_its_menu(server, page):
    # The lesson's clients queue up (c1 holds, c2 watches c1's node, c3 watches c2's); before its
    # own crash at 1000 ms we crash the holder from its menu (a fork: the lesson's crash is gone).
    open_lesson(page, server, "zk_lock_handover")
    seek(page, 900)
    panel_caught_up(page)
    assert page.locator('[data-node="c1"]').get_attribute("data-holds") == "true"
    assert page.locator(f'#log-panel tr[data-znode="{C1_NODE}"]').get_attribute("data-head") == "1"
    assert page.locator('#log-panel tr[data-znode="/lock/c2-1-lock-0000000001"] .zk-watch').text_content().startswith("◎ 1")
    shot(page, "e2e-zk-handover-before")
    menu_click(page, "c1", "Crash c1")
    page.wait_for_selector('[data-node="c1"][data-role="down"]')
    # Its ephemeral node outlives it until the leader expires the session (about 400 ms).
    assert page.locator(f'#log-panel tr[data-znode="{C1_NODE}"]').count() == 1
    play(page)
    page.wait_for_selector(f'#log-panel tr[data-znode="{C1_NODE}"]', state="detached", timeout=20_000)
    page.wait_for_selector('[data-node="c2"][data-holds="true"][data-token="1"]', timeout=20_000)
    pause(page)
    panel_caught_up(page)
    head = page.locator("#log-panel tr[data-head]")
    assert head.get_attribute("data-client") == "c2"
    assert page.locator('[data-node="c3"]').get_attribute("data-holds") == "false"
    events = page.locator("#events").text_content()
    assert "You: crashed c1" in events and "c2's watch on /lock/c1-1-lock-0000000000 fired" in events
    assert "deleted in the same transaction" in events
    assert page.locator("#log-panel .zk-woken").get_attribute("data-woken") == "1"  # c2 alone woken
    shot(page, "e2e-zk-handover-after")


def test_fencing_rejects_the_paused_holders_stale_write_in_red(server, page):
    open_lesson(page, server, "zk_fencing")
    seek(page, 2400)
    panel_caught_up(page)
    box = page.locator("#log-panel .co-storage")
    assert box.get_attribute("data-token") == "34" and box.get_attribute("data-value") == "c2"
    bad = page.locator('#log-panel .co-write[data-accepted="false"]')
    assert bad.count() == 1 and "REJECTED" in bad.text_content() and "c1-stale" in bad.text_content()
    assert bad.evaluate("e => getComputedStyle(e).backgroundColor") == "rgb(196, 22, 28)"
    assert page.locator('[data-node="st"]').get_attribute("data-value") == "c2"
    page.get_by_role("tab", name="Invariants").click()
    assert page.locator('#invariants li[data-invariant="Fencing tokens never go back"]').get_attribute("data-ok") == "true"
    page.get_by_role("tab", name="Events").click()
    assert "st REJECTED c1's write 'c1-stale'" in page.locator("#events").text_content()
    shot(page, "e2e-zk-fencing")
    # The same run with the storage not checking tokens: the lesson the suggestion names (the
    # Mutations tab's switch would restart the cluster without the lesson's clicks).
    page.locator("#lesson-picker").select_option("zk_fencing_off")
    page.wait_for_function("window.__playground.state.activeMutations.includes('no_fencing')")
    page.get_by_role("tab", name="Mutations").click()
    assert page.get_by_label("Mutation no_fencing").is_checked()
    seek(page, 2401)  # not 2400: the previous lesson's picture must not pass for this one's
    panel_caught_up(page)
    assert page.locator('#log-panel .co-write[data-accepted="false"]').count() == 0
    stale = page.locator('#log-panel .co-write[data-accepted="true"][data-stale="true"]')
    assert stale.count() == 1 and "c1-stale" in stale.text_content()
    assert page.locator('[data-node="st"]').get_attribute("data-value") == "c1-stale"
    page.get_by_role("tab", name="Invariants").click()
    page.wait_for_selector('#invariants li[data-invariant="Fencing tokens never go back"][data-ok="false"]')
    shot(page, "e2e-zk-no-fencing")


def test_client_menus_run_recipe_steps_and_a_share_link_reproduces_the_digest(server, page, browser):
    open_lesson(page, server, "zk_fencing")
    seek(page, 250)  # sessions open, no recipe step yet
    page.locator('[data-node="c2"]').click()
    items = page.locator('#menu [role="menuitem"]').all_text_contents()
    for want in ("Crash c2", "Pause c2 (stop the world)", "Partition c2 away from everyone", "Acquire the lock",
                 "Release the lock", "Read /lock from its server (may be stale)", "Read /lock after sync (fresh)"):
        assert want in items, items
    page.get_by_role("menuitem", name="Acquire the lock").click()  # c2 first, this time
    page.wait_for_function("document.querySelector('#events').textContent.includes('You: asked c2 to take the lock')")
    play(page)
    page.wait_for_selector('[data-node="c2"][data-holds="true"][data-token="33"]', timeout=20_000)
    pause(page)
    menu_click(page, "c2", "Write to the storage (token 33)")
    play(page)
    page.wait_for_selector('#log-panel .co-write[data-accepted="true"]', timeout=20_000)
    pause(page)
    # A server's menu: crash, pause, partition (no recipe steps).
    page.locator('[data-node="n1"]').click()
    items = page.locator('#menu [role="menuitem"]').all_text_contents()
    assert "Crash n1" in items and "Acquire the lock" not in items, items
    page.keyboard.press("Escape")
    page.evaluate("window.__playground.send({type: 'control', do: 'snapshot'})")
    other, here = open_share_link(page, browser)
    assert canvas_state(other) == here
    assert other.locator('[data-node="c2"]').get_attribute("data-token") == "33"
    shot(other, "e2e-zk-shared")
    other.context.close()


def test_every_zk_lesson_loads_from_the_picker_with_its_explanation(server, page):
    page.goto(f"{server}/?protocol=zk")
    page.wait_for_selector("[data-node]")
    options = page.locator("#lesson-picker option").evaluate_all("els => els.map(e => e.value)")
    assert sorted(o for o in options if o) == LESSONS
    woken = {}
    for i, name in enumerate(LESSONS):
        page.locator("#lesson-picker").select_option(name)
        page.wait_for_function(f"new URLSearchParams(location.search).get('scenario') === '{name}'")
        page.wait_for_function("document.querySelector('#lesson .notes p') && document.querySelector('#lesson .suggest')")
        assert len(page.locator("#lesson .notes").text_content()) > 80
        page.wait_for_function(f"(window.__playground.state.lesson || {{}}).name === '{name}'")
        t = 1500 + i  # a moment the previous lesson's picture cannot already show
        seek(page, t)
        panel_caught_up(page)
        assert page.locator("#events li").count() > 0, name
        assert page.locator("#log-panel").get_attribute("data-t") == str(t), name
        woken[name] = int(page.locator("#log-panel .zk-woken").get_attribute("data-woken"))
        shot(page, f"e2e-lesson-{name}")
    # Herd effect against predecessor watching: the count of watch notifications says it.
    assert woken["zk_predecessor_watch"] == 1 and woken["zk_herd"] >= 4 + woken["zk_predecessor_watch"], woken


def test_a_stale_read_shows_the_follower_behind(server, page):
    open_lesson(page, server, "zk_stale_read", speed=0.1)
    seek(page, 760)
    panel_caught_up(page)
    page.locator('#log-panel [data-tree-of="n1"]').click()  # c1's server
    page.wait_for_selector("#log-panel .zk-behind")
    assert page.locator('#log-panel tr[data-znode="/lock/c2-1-lock-0000000000"]').count() == 0
    page.locator('#log-panel [data-tree-of="n3"]').click()  # the leader has it
    page.wait_for_selector('#log-panel tr[data-znode="/lock/c2-1-lock-0000000000"]')
    page.get_by_role("tab", name="Events").click()
    assert "c1 read /lock from n1 (its state 1.2): no children" in page.locator("#events").text_content()
    shot(page, "e2e-zk-stale-read")


def test_zk_projector_mode_renders(server, page):
    page.goto(f"{server}/?protocol=zk&scenario=zk_leader_crash&projector=1&speed=0.5")
    page.wait_for_selector("body.projector [data-node]")
    pause(page)
    seek(page, 2600)
    panel_caught_up(page)
    assert page.evaluate("document.documentElement.scrollWidth") <= 1280
    assert page.locator(LEADER).count() == 1
    shot(page, "e2e-zk-projector")


def test_manual_delivery_and_stepping_on_zk(server, page):
    open_lesson(page, server, "zk_fencing")
    seek(page, 290)
    t0 = canvas_state(page)[0]
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
    # A client's timers can be fired from its menu (the generic items after the recipe's).
    page.locator('[data-node="c1"]').click()
    items = page.locator('#menu [role="menuitem"]').all_text_contents()
    assert any(i.startswith("Fire ") for i in items), items
    page.get_by_role("menuitem", name="Partition c1 away from everyone").click()
    page.wait_for_function("document.querySelector('#events').textContent.includes('You: partitioned the cluster into {c1}')")
    page.wait_for_selector('[data-link="c1-st"][data-cut="both"]')
    shot(page, "e2e-zk-manual")


def ring_drawn(page, node: str) -> float:
    """How much of a client's session ring is drawn (1 full, 0 empty), from its dash offset, once
    the animation loop has drawn the canvas at the frame's moment (a busy machine can lag it)."""
    page.wait_for_function("(() => { const c = document.querySelector('#canvas');"
                           " return c.dataset.drawn === c.dataset.time; })()", timeout=20_000)
    return page.evaluate("""(id) => {
      const r = document.querySelector(`[data-node="${id}"] .ring`);
      const len = parseFloat(r.getAttribute("stroke-dasharray"));
      return 1 - parseFloat(r.getAttribute("stroke-dashoffset") || "0") / len;
    }""", node)


def test_a_paused_clients_session_ring_drains_and_a_crashed_server_restarts_from_its_menu(server, page):
    # zk_fencing: c1 is paused (stop the world) at 800 ms with a 400 ms session; its ring drains
    # while its server hears nothing. Then a server crashed from its menu comes back from it.
    open_lesson(page, server, "zk_fencing")
    seek(page, 750)
    full = ring_drawn(page, "c1")
    seek(page, 1150)
    drained = ring_drawn(page, "c1")
    assert full > 0.6 and drained < 0.3 and drained < full, (full, drained)
    shot(page, "e2e-zk-ring-drained")
    menu_click(page, "n2", "Crash n2")
    page.wait_for_selector('[data-node="n2"][data-role="down"]')
    page.locator('[data-node="n2"]').click()
    items = page.locator('#menu [role="menuitem"]').all_text_contents()
    assert "Restart n2" in items and "Crash n2" not in items, items
    page.get_by_role("menuitem", name="Restart n2").click()
    page.wait_for_function("document.querySelector('[data-node=\"n2\"]').dataset.role !== 'down'")


def menu_items(page, node: str) -> list[str]:
    page.locator(f'[data-node="{node}"]').click()
    page.wait_for_selector('#menu [role="menuitem"]')
    return page.locator('#menu [role="menuitem"]').all_text_contents()


def events_say(page, text: str) -> None:
    page.wait_for_function("(t) => document.querySelector('#events').textContent.includes(t)", arg=text,
                           timeout=45_000)


def test_a_client_paused_from_its_menu_offers_resume_and_resumes(server, page):
    # zk_lock_handover at 600 ms: c2 waits in the lock queue. Paused from its menu, its menu then
    # offers Resume (not Pause), and Resume brings it back up.
    open_lesson(page, server, "zk_lock_handover")
    seek(page, 600)
    items = menu_items(page, "c2")
    assert "Pause c2 (stop the world)" in items and "Resume c2" not in items, items
    page.get_by_role("menuitem", name="Pause c2 (stop the world)").click()
    page.wait_for_selector('[data-node="c2"][data-status="paused"]')
    events_say(page, "You: paused c2")
    items = menu_items(page, "c2")
    assert "Resume c2" in items and "Pause c2 (stop the world)" not in items, items
    shot(page, "e2e-zk-paused-menu")
    page.get_by_role("menuitem", name="Resume c2").click()
    page.wait_for_selector('[data-node="c2"][data-status="up"]')
    events_say(page, "You: resumed c2")
    assert "Pause c2 (stop the world)" in menu_items(page, "c2")
    page.keyboard.press("Escape")


def test_the_client_api_and_close_from_the_menu(server, page):
    # zk_stale_read's ensemble: c1 on the follower n1, c2 on the leader n3; nothing automatic.
    # c2 creates /data, sets it at the version its server shows, c1 reads it with a watch, and the
    # watch fires on c2's next set; then c2 closes its session.
    open_lesson(page, server, "zk_stale_read")
    seek(page, 300)
    items = menu_items(page, "c2")
    assert {"Create /data", "Exists /data + watch (fires when it is made)", "Close c2's session"} <= set(items), items
    page.get_by_role("menuitem", name="Create /data").click()
    play(page)
    page.wait_for_selector('#log-panel [data-znode="/data"][data-version="0"]', timeout=45_000)
    events_say(page, "c2 created the node /data")
    # c1's menu offers what c1's own server shows: n1 (behind a slow link) has /data a little later.
    page.wait_for_function("(window.__playground.state.nodes.n1.tree || []).some(z => z[0] === '/data')",
                           timeout=45_000)
    pause(page)
    items = menu_items(page, "c1")
    assert {"Set /data (version 0)", "Get /data + watch", "Delete /data (version 0)"} <= set(items), items
    page.get_by_role("menuitem", name="Get /data + watch").click()
    play(page)
    events_say(page, "and left a one-time watch on it")
    pause(page)
    menu_click(page, "c2", "Set /data (version 0)")
    play(page)
    page.wait_for_selector('#log-panel [data-znode="/data"][data-version="1"]', timeout=45_000)
    events_say(page, "c1's watch on /data fired")
    pause(page)
    shot(page, "e2e-zk-client-api")
    menu_click(page, "c2", "Close c2's session")
    play(page)
    events_say(page, "c2 closed its session")
    page.wait_for_function("document.querySelector('[data-node=\"c2\"]').dataset.session === ''", timeout=45_000)
    pause(page)
    items = menu_items(page, "c2")
    assert "Close c2's session" in items and "Acquire the lock" in items
    page.keyboard.press("Escape")
    shot(page, "e2e-zk-closed")
