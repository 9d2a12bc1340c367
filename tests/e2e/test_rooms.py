"""Rooms end to end in Chromium: a presenter and two viewers, the viewers on another server
process than the presenter's, sharing one Redis. The viewers see the presenter's digest; a
viewer's click is refused (said once) and changes nothing; "Take a copy" then diverges, and
"Back to the room" follows the room again."""

from __future__ import annotations

import os
import shutil

import pytest

from ..serving import free_port, redis_command, start_redis, start_server, stop_server
from .conftest import shot

pytestmark = [pytest.mark.browser,
              pytest.mark.skipif(shutil.which("redis-server") is None,
                                 reason="redis-server is not installed (make test installs it)")]

DIGEST = "document.querySelector('#canvas').dataset.digest"


class _Servers(list):
    def __init__(self, urls, redis_url):
        super().__init__(urls)
        self.redis_url = redis_url


@pytest.fixture(scope="module")
def two_servers():
    rport = free_port()
    redis = start_redis(rport)
    env = {**os.environ, "PLAYGROUND_BROKER": f"redis://127.0.0.1:{rport}/0",
           "PLAYGROUND_ROOM_COUNT_EVERY_S": "0.5", "PLAYGROUND_NEW_SESSIONS_PER_CLIENT_BURST": "1000"}
    procs, urls = [], []
    try:
        for _ in range(2):
            port = free_port()
            procs.append(start_server(port, env, ("--log-level", "warning")))
            urls.append(f"http://127.0.0.1:{port}")
        yield _Servers(urls, env["PLAYGROUND_BROKER"])
    finally:
        for p in procs:
            stop_server(p)
        stop_server(redis)


def digest_is(page, value: str, timeout=15_000) -> None:
    page.wait_for_function(f"() => {DIGEST} === '{value}'", timeout=timeout)


def paused_digest(page) -> str:
    page.wait_for_function(f"() => {DIGEST}.length === 16", timeout=15_000)
    return page.locator("#canvas").get_attribute("data-digest")


def test_a_presenter_and_two_viewers_on_another_server(two_servers, page, browser):
    a, b = two_servers
    page.goto(f"{a}/?speed=1")
    page.wait_for_selector('[data-node][data-role="leader"]', timeout=20_000)
    page.keyboard.press("Space")
    page.wait_for_selector('#btn-play[aria-label="Play"]')
    d0 = paused_digest(page)
    page.get_by_role("button", name="Room: open one for this session, or join one").click()
    page.get_by_role("button", name="Open a room for this session").click()
    page.wait_for_selector("#room-code")
    code = page.locator("#room-code").text_content()
    assert len(code) == 6 and page.locator("#room-link").text_content().endswith(f"/room/{code}")
    page.wait_for_function("document.querySelector('.room-qr').naturalWidth > 0")
    page.wait_for_selector("#room-count")

    viewers = []
    for base in (b, b):
        v = browser.new_context(viewport={"width": 1280, "height": 720}).new_page()
        errors = []
        v.on("pageerror", lambda e, errors=errors: errors.append(str(e)))
        v.goto(f"{base}/room/{code}")
        viewers.append((v, errors))
    for v, _ in viewers:
        digest_is(v, d0)
        assert "Following room " + code in v.locator("#room-banner").text_content()
    page.wait_for_function("document.querySelector('#room-count').textContent === '2 following'",
                           timeout=15_000)
    shot(page, "e2e-room-presenter")
    page.keyboard.press("p")  # projector mode: the code and the QR code large
    shot(page, "e2e-room-presenter-projector")
    page.keyboard.press("p")

    # The presenter crashes a node: both viewers follow, to the digest.
    page.locator('[data-node="n1"]').click()
    page.get_by_role("menuitem", name="Crash n1").click()
    page.wait_for_selector('[data-node="n1"][data-role="down"]')
    page.wait_for_function(f"() => {DIGEST} !== '{d0}' && {DIGEST}.length === 16")
    d1 = page.locator("#canvas").get_attribute("data-digest")
    for v, _ in viewers:
        digest_is(v, d1)
        v.wait_for_selector('[data-node="n1"][data-role="down"]')

    # A viewer's click is refused, once, and the room is unchanged.
    v1 = viewers[0][0]
    v1.locator('[data-node="n2"]').click()
    menu = v1.get_by_role("menuitem", name="Crash n2")
    if menu.count():
        menu.click()
    v1.wait_for_selector("#toast:not([hidden])")
    assert "your clicks do nothing" in v1.locator("#toast").text_content()
    v1.keyboard.press("h")  # heal: refused too, and not said again
    shot(v1, "e2e-room-viewer")
    v1.evaluate("window.__playground.send({type: 'control', do: 'snapshot'})")
    digest_is(v1, d1)
    assert page.locator("#canvas").get_attribute("data-digest") == d1
    assert page.locator('[data-node="n2"][data-role="down"]').count() == 0

    # Take a copy: a private session at the same moment, which then diverges from the room.
    v1.get_by_role("button", name="Take a copy").click()
    v1.wait_for_url("**/?*share=*")
    digest_is(v1, d1)
    v1.locator('[data-node="n2"]').click()
    v1.get_by_role("menuitem", name="Crash n2").click()
    v1.wait_for_selector('[data-node="n2"][data-role="down"]')
    v1.wait_for_function(f"() => {DIGEST} !== '{d1}' && {DIGEST}.length === 16")
    assert page.locator("#canvas").get_attribute("data-digest") == d1
    digest_is(viewers[1][0], d1)
    assert page.locator('[data-node="n2"][data-role="down"]').count() == 0
    shot(v1, "e2e-room-copy")

    # Back to the room: following again.
    v1.get_by_role("link", name="Back to the room").click()
    v1.wait_for_url(f"**/room/{code}")
    digest_is(v1, d1)
    for v, errors in viewers:
        assert not errors, errors
        v.context.close()


def test_a_killed_workers_session_comes_back_at_the_same_digest(two_servers, page):
    """Behind a load balancer: the page's worker is killed; its reconnect lands on another
    worker, which rebuilds the session from its recipe in Redis at the same digest."""
    import signal

    from ..serving import Balancer

    a, _ = two_servers
    port = free_port()
    env = {**os.environ, "PLAYGROUND_BROKER": two_servers.redis_url}
    doomed = start_server(port, env, ("--log-level", "warning"))
    lb = Balancer([port, int(a.rsplit(":", 1)[1])])
    try:
        page.goto(f"http://127.0.0.1:{lb.port}/?speed=1")
        page.wait_for_selector('[data-node][data-role="leader"]', timeout=20_000)
        page.keyboard.press("Space")
        page.wait_for_selector('#btn-play[aria-label="Play"]')
        paused_digest(page)
        sid = page.evaluate("window.__playground.state.session")
        # Redis holds every write from before the click until the worker is dead: the page sees
        # the click at once, and only the page's copy of it can bring it back.
        assert redis_command(two_servers.redis_url, "CLIENT", "PAUSE", "60000", "WRITE") == b"+OK\r\n"
        try:
            page.locator('[data-node="n2"]').click()
            page.get_by_role("menuitem", name="Crash n2").click()
            page.wait_for_selector('[data-node="n2"][data-role="down"]')
            d = paused_digest(page)
            t = page.locator("#canvas").get_attribute("data-time")
            doomed.send_signal(signal.SIGKILL)
            doomed.wait(10)
        finally:
            assert redis_command(two_servers.redis_url, "CLIENT", "UNPAUSE") == b"+OK\r\n"
        recipe = redis_command(two_servers.redis_url, "GET", f"pg:recipe:{sid}")
        assert b'"crash"' not in recipe and b'"actions":[]' in recipe  # Redis never had the click
        page.wait_for_function("document.querySelector('#conn').dataset.state !== 'live'")
        page.wait_for_function("document.querySelector('#conn').dataset.state === 'live'",
                               timeout=20_000)
        digest_is(page, d, timeout=20_000)
        assert page.locator("#canvas").get_attribute("data-time") == t
        page.wait_for_selector('[data-node="n2"][data-role="down"]')  # drawn at the next frame
        assert page.evaluate("window.__playground.state.timeline.length") == 1
        shot(page, "e2e-room-rebuilt")
    finally:
        lb.close()
        if doomed.poll() is None:
            stop_server(doomed)
