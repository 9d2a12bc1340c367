"""A stepped lesson in the page: the presenter's keys walk the class through its pause points."""

from __future__ import annotations

import pytest

from .conftest import shot
from .test_playground import canvas_state

pytestmark = pytest.mark.browser


def at_pause(page, t: float) -> None:
    page.wait_for_function(f"Number(document.querySelector('#canvas').dataset.time) === {t}"
                           " && document.querySelector('#canvas').dataset.digest.length === 16"
                           " && document.querySelector('#btn-play').getAttribute('aria-label') === 'Play'",
                           timeout=30_000)


@pytest.mark.parametrize("projector", [False, True], ids=["normal", "projector"])
def test_presenter_keys_walk_the_steps_and_pause_exactly(server, page, projector):
    q = "&projector=1" if projector else ""
    page.goto(f"{server}/?scenario=class_leader_failover&speed=1{q}")
    page.wait_for_selector("#steps:not([hidden])")
    assert page.locator("#steps-count").text_content() == "Step 1 of 5"
    at_pause(page, 400)  # the lesson plays to its first pause point by itself, and stops there
    q1 = page.locator("#steps-question")
    assert q1.is_visible() and "How many votes" in q1.text_content()
    shot(page, "e2e-steps-1" + ("-projector" if projector else ""))
    page.keyboard.press("PageDown")
    page.wait_for_function("document.querySelector('#steps').dataset.step === '2'")
    at_pause(page, 2000)
    assert "n5 crashes" in page.locator("#steps-caption").text_content()
    assert page.locator('[data-node="n5"]').get_attribute("data-status") == "down"
    assert "still commit" in page.locator("#steps-question").text_content()
    _t, digest_2000 = canvas_state(page)
    page.keyboard.press("PageUp")  # back to the previous pause point
    at_pause(page, 400)
    assert page.locator("#steps-count").text_content() == "Step 1 of 5"
    page.keyboard.press("PageDown")
    at_pause(page, 2000)
    assert canvas_state(page) == (2000.0, digest_2000)  # the same run, step by step
    page.keyboard.press("b")
    assert page.locator("#blank").is_visible()
    page.keyboard.press("b")
    assert page.locator("#blank").is_hidden()


def test_a_scenario_without_steps_shows_no_step_box(server, page):
    page.goto(f"{server}/?scenario=clean_election")
    page.wait_for_selector("[data-node]")
    page.wait_for_function("window.__playground.state.steps !== undefined")
    assert page.locator("#steps").is_hidden()
