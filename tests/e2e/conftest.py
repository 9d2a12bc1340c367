"""A real server on a free loopback port and headless Debian Chromium, shared by the e2e tests."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from ..serving import free_port, start_server, stop_server

CHROMIUM = "/usr/bin/chromium"
ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "artifacts"
LAUNCH_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
               "--disable-component-update", "--disable-sync", "--no-first-run"]


def pytest_collection_modifyitems(config, items):
    if os.path.exists(CHROMIUM):
        return
    skip = pytest.mark.skip(reason=f"{CHROMIUM} is missing (make test installs Debian's chromium)")
    for item in items:
        if "browser" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(scope="session")
def server():
    port = free_port()
    # Room for a replay long enough (about a second) to watch its progress in the page.
    env = {**os.environ, "PLAYGROUND_DETACHED_GRACE_S": "5", "PLAYGROUND_MAX_REPLAY_OPS": "12000",
           "PLAYGROUND_NEW_SESSIONS_PER_CLIENT_BURST": "1000"}  # every page comes from one address
    proc = start_server(port, env, ("--log-level", "warning"))
    yield f"http://127.0.0.1:{port}"
    stop_server(proc)


@pytest.fixture(scope="module")
def browser():
    # Module-scoped: Playwright's sync API keeps an event loop running while it is open, which
    # would break later tests that call asyncio.run() (tests/web runs after tests/e2e).
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=LAUNCH_ARGS)
        # Playwright evaluates string predicates (wait_for_function) with eval, which the page's
        # Content-Security-Policy forbids: test contexts bypass it, except the one test that
        # checks the page runs under it (it passes bypass_csp=False).
        new_context = b.new_context
        b.new_context = lambda **kw: new_context(**{"bypass_csp": True, **kw})
        yield b
        b.close()


@pytest.fixture
def page(browser):
    ARTIFACTS.mkdir(exist_ok=True)
    ctx = browser.new_context(viewport={"width": 1280, "height": 720})
    pg = ctx.new_page()
    errors: list[str] = []
    pg.on("pageerror", lambda e: errors.append(str(e)))
    yield pg
    ctx.close()
    assert not errors, f"JavaScript errors on the page: {errors}"


def shot(page, name: str) -> None:
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"))
