"""Paxos in headless Chromium: the page module (static/js/protocols/paxos.js) through the seam.

The same hooks as Raft's tests (data-node, data-role, the canvas's data-time and data-digest) plus
Paxos's own (data-phase, data-ballot, data-promised, data-leader, data-learned on nodes; the
ballots panel's data-chosen, data-cell and data-unsafe). Screenshots go to artifacts/.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from .conftest import ARTIFACTS, shot
from .test_playground import canvas_state, open_share_link, panel_caught_up, pause, seek

pytestmark = pytest.mark.browser

LESSONS = sorted(p.stem for p in (Path(__file__).resolve().parents[2] / "scenarios").glob("paxos_*.json"))
LEADER = '[data-node][data-leader="true"]'


def wait_ready(page) -> None:
    """The cluster is drawn (a playing page's digest is blank between snapshots)."""
    page.wait_for_selector("[data-node]", timeout=20_000)
    page.wait_for_function("(window.__playground.state.extras || {}).mode")


def test_paxos_opens_as_a_live_multi_paxos_cluster_and_a_leader_serves(server, page):
    page.goto(f"{server}/?protocol=paxos&speed=1")
    page.wait_for_selector(LEADER, timeout=15_000)
    leader = page.locator(LEADER).first.get_attribute("data-node")
    assert page.locator(f'[data-node="{leader}"] .nrole').text_content() == "★ LEADER"
    assert page.locator("#protocol-picker").input_value() == "paxos"
    # The leader serves the clients: slots get chosen (computed from acceptors) and learned.
    page.wait_for_selector('#log-panel tr[data-log-node="chosen"] td[data-slot]', timeout=15_000)
    page.wait_for_selector(f'#log-panel tr[data-log-node="{leader}"] td.committed')
    assert page.locator("#log-panel .px-unsafe").count() == 0
    # Pills are labelled with ballots.
    page.wait_for_function("[...window.__playground.state.flight.values()].some(m => /^(Accept|Accepted|\u2665) \\d+\\.n\\d/.test(m[5]))")
    shot(page, "e2e-paxos-multi")


def test_a_clean_basic_run_chooses_a_value_before_learners_know_it(server, page):
    page.goto(f"{server}/?protocol=paxos&scenario=paxos_clean&speed=0.05")
    wait_ready(page)
    page.wait_for_selector("#log-panel .px-chosen[data-chosen]", state="attached")
    page.wait_for_selector('#log-panel .px-chosen[data-chosen="x"]', timeout=20_000)
    page.wait_for_selector('[data-node][data-learned="x"]', timeout=20_000)
    assert "chosen at" in page.locator("#log-panel .px-chosen").text_content()
    shot(page, "e2e-paxos-clean")


def test_adopt_value_shows_the_ballots_panel(server, page):
    page.goto(f"{server}/?protocol=paxos&scenario=paxos_adopt_value&speed=0.02")
    wait_ready(page)
    # Let it play: the panel's history comes from the frames as they arrive.
    page.wait_for_selector('#log-panel th[data-ballot="2.n3"]', timeout=30_000)
    page.wait_for_selector('#log-panel td[data-cell="n1@2.n3"]:has-text("x"), #log-panel td[data-cell="n2@2.n3"]:has-text("x")',
                           timeout=30_000)
    pause(page)
    assert page.locator("#log-panel .px-chosen").get_attribute("data-chosen") == "x"
    cells = page.locator("#log-panel td[data-cell]").evaluate_all("els => els.map(e => [e.dataset.cell, e.textContent])")
    assert any(c == "n1@1.n1" and "x" in t for c, t in cells), cells
    assert not any("y" in t for _c, t in cells), cells  # n3 adopted x: y is never accepted
    page.locator("#log-panel").screenshot(path=str(ARTIFACTS / "e2e-paxos-ballots-panel.png"))
    shot(page, "e2e-paxos-adopt-value")


def test_every_paxos_lesson_loads_from_the_picker_with_its_explanation(server, page):
    page.goto(f"{server}/?protocol=paxos")
    page.wait_for_selector("[data-node]")
    options = page.locator("#lesson-picker option").evaluate_all("els => els.map(e => e.value)")
    assert sorted(o for o in options if o) == LESSONS  # the picker lists this protocol's lessons
    for name in LESSONS:
        page.locator("#lesson-picker").select_option(name)
        page.wait_for_function(f"new URLSearchParams(location.search).get('scenario') === '{name}'")
        page.wait_for_function("document.querySelector('#lesson .notes p')")
        assert len(page.locator("#lesson .notes").text_content()) > 80
        page.wait_for_function(f"(window.__playground.state.lesson || {{}}).name === '{name}'")
        seek(page, 1500)
        panel_caught_up(page)
        assert page.locator("#events li").count() > 0, name
        if name.startswith("paxos_flexible_unsafe"):
            page.wait_for_selector("#log-panel .px-unsafe")
        elif name.startswith("paxos_flexible_safe"):
            page.wait_for_selector("#log-panel .px-head")
            assert page.locator("#log-panel .px-unsafe").count() == 0
        shot(page, f"e2e-lesson-{name}")


@pytest.mark.parametrize("name", ["paxos_mutation_learn_without_majority", "paxos_flexible_unsafe"])
def test_a_broken_lesson_shows_a_violated_invariant(server, page, name):
    page.goto(f"{server}/?protocol=paxos&scenario={name}")
    wait_ready(page)
    seek(page, 3000)
    panel_caught_up(page)
    page.get_by_role("tab", name="Invariants").click()
    states = dict(page.locator("#invariants li").evaluate_all("els => els.map(e => [e.dataset.invariant, e.dataset.ok])"))
    assert "false" in states.values(), states
    assert "broken" in page.locator("#inv-badge").text_content()
    shot(page, f"e2e-paxos-broken-{name}")


def test_a_learner_that_learns_too_early_is_caught_by_the_panel_live(server, page):
    # learn_without_majority: a learner learns from one Accepted; the panel, which computes chosen
    # from the acceptors, says that value was not chosen (yet) at that moment.
    page.goto(f"{server}/?protocol=paxos&scenario=paxos_mutation_learn_without_majority&speed=0.01")
    page.wait_for_selector("#log-panel .px-wrong", timeout=30_000)
    pause(page)
    shot(page, "e2e-paxos-mutation-breaking")
    page.get_by_role("tab", name="Invariants").click()
    page.wait_for_selector('#invariants li[data-invariant="Learned Is Chosen"][data-ok="false"]')
    shot(page, "e2e-paxos-mutation-invariant")


def test_paxos_menus_and_the_backoff_switch(server, page):
    page.goto(f"{server}/?protocol=paxos&scenario=paxos_duel_livelock&speed=0.05")
    page.wait_for_selector("[data-node]")
    page.wait_for_function("window.__playground.state.extras.backoff === false")
    pause(page)
    page.locator('[data-node="n3"]').click()
    items = page.locator('#menu [role="menuitem"]').all_text_contents()
    assert "Crash n3" in items and any(i.startswith("Propose a value") for i in items), items
    assert "Time out now (retry with a higher ballot)" in items
    page.get_by_role("menuitem", name="Propose a value").click()
    page.wait_for_function("document.querySelector('#events').textContent.includes('You: asked n3 to propose')")
    # The back-off cure, from the Mutations tab's extension switch (restarts the cluster).
    page.get_by_role("tab", name="Mutations").click()
    page.get_by_label("Option backoff").check()
    page.wait_for_function("window.__playground.state.extras.backoff === true")
    # Multi-Paxos: client requests in the menu, and the leader is the C key's target.
    page.goto(f"{server}/?protocol=paxos&speed=1")
    page.wait_for_selector(LEADER, timeout=15_000)
    leader = page.locator(LEADER).first.get_attribute("data-node")
    page.locator(f'[data-node="{leader}"]').click()
    items = page.locator('#menu [role="menuitem"]').all_text_contents()
    assert f"Client write to {leader}" in items and f"Client read from {leader}" in items, items
    page.get_by_role("menuitem", name=f"Crash {leader}").click()
    page.wait_for_function(f"[...document.querySelectorAll('[data-node][data-leader=\"true\"]')].some(e => e.dataset.node !== '{leader}')",
                           timeout=15_000)
    page.wait_for_selector('#log-panel tr[data-log-node="chosen"] td[data-slot]')
    pause(page)
    panel_caught_up(page)
    shot(page, "e2e-paxos-multi-new-leader")


def test_manual_delivery_on_paxos_and_a_share_link_reproduces_it(server, page, browser):
    page.goto(f"{server}/?protocol=paxos&scenario=paxos_clean&speed=0.05")
    wait_ready(page)
    pause(page)
    # Back to the start, whenever the pause landed (a busy machine may land it after the decree
    # was chosen, with nothing left to send): n1's Prepares are on the wire at 0.5 ms.
    page.evaluate("window.__playground.send({type: 'control', do: 'seek', t: 0.5})")
    page.wait_for_function("Number(document.querySelector('#canvas').dataset.time) === 0.5"
                           " && document.querySelector('#canvas').dataset.digest.length === 16")
    page.keyboard.press("m")
    page.wait_for_selector('#btn-manual[aria-pressed="true"]')
    page.keyboard.press("Space")  # play: messages stop on their links
    page.wait_for_function("window.__playground.state.waiting.size >= 2", timeout=20_000)
    pause(page)
    for _ in range(2):
        before = page.evaluate("window.__playground.state.waiting.size")
        btn = page.locator("#waiting-list .waiting-msg").first
        label = btn.text_content()
        assert "Prepare" in label or "Promise" in label or "Accept" in label, label
        btn.click()
        page.get_by_role("menuitem", name="Deliver now").click()
        page.wait_for_function(f"window.__playground.state.waiting.size !== {before} || "
                               "document.querySelectorAll('#events li').length > 0")
        page.wait_for_timeout(200)
    page.wait_for_function("document.querySelectorAll('#events li').length > 0")
    assert page.locator("#events").get_by_text("delivered message").count() >= 2
    pause(page) if page.locator("#btn-play").get_attribute("aria-label") != "Play" else None
    page.evaluate("window.__playground.send({type: 'control', do: 'snapshot'})")
    other, here = open_share_link(page, browser)
    assert canvas_state(other) == here
    assert other.evaluate("document.body.dataset.protocol") == "paxos" or \
        other.evaluate("window.__playground.state.scenario.protocol") == "paxos"
    shot(other, "e2e-paxos-manual-shared")
    other.context.close()


def test_paxos_projector_mode_renders(server, page):
    page.goto(f"{server}/?protocol=paxos&scenario=paxos_adopt_value&projector=1&speed=0.05")
    page.wait_for_selector("body.projector [data-node]")
    wait_ready(page)
    page.wait_for_selector('#log-panel .px-chosen[data-chosen="x"]', timeout=30_000)
    assert page.evaluate("document.documentElement.scrollWidth") <= 1280
    shot(page, "e2e-paxos-projector")
    page.goto(f"{server}/?protocol=paxos&projector=1&speed=1")
    page.wait_for_selector(LEADER, timeout=15_000)
    page.wait_for_selector('#log-panel tr[data-log-node="chosen"] td[data-slot]', timeout=15_000)
    pause(page)
    panel_caught_up(page)
    assert page.evaluate("document.documentElement.scrollWidth") <= 1280
    shot(page, "e2e-paxos-projector-multi")
