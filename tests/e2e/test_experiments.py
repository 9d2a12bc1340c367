"""The Experiments tab in headless Chromium: 20 trials of Raft's election_downtime_ms on the
Figure 16 lesson (the CDF drawn, the summary filled, a run opened from the list and from the
chart), and a counterexample found for a quick mutation, opened paused at its violation with the
events before it marked. Every wait is for something on the page, never for a length of time.
Screenshots (normal and projector) go to artifacts/."""

from __future__ import annotations

import pytest

from .conftest import shot

pytestmark = pytest.mark.browser

READY = "() => document.querySelector('[data-panel=experiments]').dataset.ready === '1'"
IDLE = "() => !document.querySelector('[data-panel=experiments]').dataset.busy"


def open_tab(page):
    page.get_by_role("tab", name="Experiments").click()
    page.wait_for_function(READY)


def test_twenty_trials_draw_a_cdf_fill_the_table_and_open_a_run(server, page):
    page.goto(f"{server}/?scenario=figure16_top")
    page.wait_for_selector("#canvas [data-node]")
    open_tab(page)
    page.select_option("#lab-measure", "election_downtime_ms")
    page.select_option("#lab-param", "")
    page.fill("#lab-trials", "20")
    page.get_by_role("button", name="Run trials").click()
    page.wait_for_function(IDLE + " && document.querySelectorAll('#lab-runs tbody tr').length === 20")
    page.wait_for_function("() => document.querySelector('#lab-charts').dataset.runs === '20'")
    assert page.locator("#lab-cdf canvas").count() == 1 and page.locator("#lab-hist canvas").count() == 1
    cells = page.locator("#lab-summary tbody tr").first.locator("td").all_text_contents()
    assert cells[0] == "20" and all(c not in ("", "–") for c in cells[1:5]), cells
    assert "20 of 20 runs" in page.locator("#lab-status").text_content()
    shot(page, "experiments-trials")
    page.locator("[data-panel=experiments]").screenshot(path="artifacts/experiments-panel.png")
    page.click("#btn-projector")
    shot(page, "experiments-trials-projector")
    page.click("#btn-projector")

    # a run from the list opens in the page: that seed, paused at its end
    row = page.locator("#lab-runs tbody tr").nth(3)
    seed = row.locator("td").first.text_content()
    row.click()
    page.wait_for_function(f"() => document.querySelector('#seed-label').textContent === 'seed {seed}'")
    page.wait_for_function("() => document.querySelector('#canvas').dataset.digest.length === 16")
    assert "paused at its end" in page.locator("#lab-opened").text_content()
    assert page.locator("#lab-runs tbody tr.opened").count() == 1

    # a point of the CDF opens its run too
    page.evaluate("() => { document.querySelector('#lab-opened').textContent = ''; }")
    # The tab may redraw its charts once more after the run opened (a new hello, a resize): take
    # the chart as it stands once it is in place.
    for attempt in range(5):
        try:
            page.locator("#lab-cdf .u-over").scroll_into_view_if_needed(timeout=10_000)
            break
        except Exception:  # detached while being redrawn: look again
            if attempt == 4:
                raise
            page.wait_for_selector("#lab-cdf .u-over", state="attached")
    box = page.locator("#lab-cdf .u-over").bounding_box()
    page.mouse.move(box["x"] + box["width"] * 0.5, box["y"] + box["height"] * 0.5)
    page.mouse.click(box["x"] + box["width"] * 0.5, box["y"] + box["height"] * 0.5)
    page.wait_for_function("() => document.querySelector('#lab-opened').textContent.startsWith('Opened seed ')")
    opened = page.locator("#lab-opened").text_content()
    assert opened.startswith("Opened seed ")
    shown = opened.split()[2].rstrip(":")
    assert page.locator("#lab-runs tbody tr.opened td").first.text_content() == shown
    page.wait_for_function(f"() => document.querySelector('#seed-label').textContent === 'seed {shown}'")


def test_find_a_counterexample_opens_it_paused_at_the_violation(server, page):
    page.goto(f"{server}/?protocol=paxos&scenario=paxos_clean")
    page.wait_for_selector("#canvas [data-node]")
    open_tab(page)
    page.select_option("#lab-mutation", "learn_without_majority")
    page.select_option("#lab-strategy", "random")
    page.get_by_role("button", name="Find a counterexample").click()
    page.wait_for_function(IDLE + " && document.querySelector('#lab-search-status').textContent.startsWith('Found')")
    # opened in the page: paused at the violation, the Invariants tab showing the broken one
    page.wait_for_selector("#invariants li.lab-broken")
    broken = page.locator("#invariants li.lab-broken")
    assert broken.get_attribute("data-ok") == "false"
    assert "BROKEN" in broken.text_content()
    assert page.locator('[role="tab"][data-tab="invariants"]').get_attribute("aria-selected") == "true"
    assert page.locator("#btn-play").get_attribute("aria-label") == "Play"
    marked = page.locator("#events li.lead").count()
    assert 1 <= marked <= 8
    shot(page, "experiments-search-invariants")
    page.get_by_role("tab", name="Events").click()
    shot(page, "experiments-search-events")
    page.click("#btn-projector")
    shot(page, "experiments-search-projector")
