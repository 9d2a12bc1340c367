"""Compare mode in headless Chromium: two Raft variants side by side, a crash clicked in one canvas
shows in both, and the share link reproduces both worlds' digests. Screenshots (normal and
projector) go to artifacts/."""

from __future__ import annotations

import pytest

from .conftest import shot
from .test_playground import leader_of

pytestmark = pytest.mark.browser

VARIANTS = ("pre_vote-on", "timeout-150-160")
SECOND = f'svg.world-canvas[data-variant="{VARIANTS[1]}"]'
BOTH_DRAWN = f"""() => [document.querySelector('#canvas'), document.querySelector('{SECOND}')]
    .every(c => c && c.dataset.digest.length === 16)"""


def worlds_state(page) -> list[tuple[str, str, str]]:
    """(variant, time, digest) of every canvas, in order."""
    return page.eval_on_selector_all(
        "#canvas, svg.world-canvas",
        "els => els.map(e => [e.dataset.variant, e.dataset.time, e.dataset.digest])")


def test_two_raft_variants_side_by_side_crash_in_one_canvas_and_share(server, page, browser):
    page.goto(f"{server}/?speed=1")
    leader_of(page)
    page.get_by_role("button", name="Compare variants side by side").click()
    for name in VARIANTS:
        page.locator(f'#compare-options input[value="{name}"]').check()
    page.get_by_role("button", name="Compare selected").click()
    # The run so far replays in both worlds, which end paused at the same moment.
    page.wait_for_selector(f"{SECOND} [data-node]")
    page.wait_for_function(BOTH_DRAWN)
    labels = page.locator(".world-label:not([hidden])").all_text_contents()
    assert labels == list(VARIANTS)
    assert f"compare={VARIANTS[0]}%2C{VARIANTS[1]}" in page.url
    (v0, t0, d0), (v1, t1, d1) = worlds_state(page)
    assert (v0, v1) == VARIANTS and t0 == t1 and d0 != d1

    # A crash clicked in the second canvas happens in both worlds at the same moment.
    page.locator(f'{SECOND} [data-node="n1"]').click()
    page.get_by_role("menuitem", name="Crash n1").click()
    page.wait_for_selector('#canvas [data-node="n1"][data-status="down"]')
    page.wait_for_selector(f'{SECOND} [data-node="n1"][data-status="down"]')
    page.wait_for_function(BOTH_DRAWN)
    here = worlds_state(page)
    assert here[0][1] == here[1][1] and here[0][2] != here[1][2]
    assert page.locator("#events").get_by_text("You: crashed n1").count() == 2  # once per world
    shot(page, "e2e-compare")

    page.get_by_role("button", name="Projector mode").click()
    page.wait_for_selector("body.projector.comparing")
    size = page.locator(".world-label").first.evaluate("e => parseFloat(getComputedStyle(e).fontSize)")
    assert size >= 22  # readable from the back of the room
    shot(page, "e2e-compare-projector")
    page.get_by_role("button", name="Projector mode").click()

    # One share link reproduces both worlds, digest for digest.
    page.get_by_role("button", name="Copy a share link to this moment").click()
    page.wait_for_function("document.querySelector('#share-url').dataset.url")
    url = page.locator("#share-url").get_attribute("data-url")
    other = browser.new_context(viewport={"width": 1280, "height": 720}).new_page()
    other.goto(url)
    other.wait_for_function(BOTH_DRAWN)
    assert worlds_state(other) == here
    assert other.locator(f'{SECOND} [data-node="n1"]').get_attribute("data-status") == "down"
    shot(other, "e2e-compare-shared")
    other.context.close()


def test_a_bad_compare_choice_is_said_and_changes_nothing(server, page):
    page.goto(f"{server}/?speed=1")
    leader_of(page)
    page.get_by_role("button", name="Compare variants side by side").click()
    page.locator(f'#compare-options input[value="{VARIANTS[0]}"]').check()
    page.get_by_role("button", name="Compare selected").click()
    page.wait_for_function("document.querySelector('#notice').textContent.includes('control.variants')")
    assert "compare 2 to 4 variants (asked for 1" in page.locator("#notice").text_content()
    assert page.locator("svg.world-canvas").count() == 0
    assert page.locator("#btn-play").get_attribute("aria-label") == "Pause"  # still playing
