"""Keys typed in the browser terminal while it reconnects reach the app once it resumes, in
order, in headless Chromium against a real server behind the fault proxy."""

from __future__ import annotations

import pytest

from tests.e2e.browser import CHROMIUM, Browser, joined
from tests.e2e.conftest import E2E
from tests.e2e.test_input import xev, xev_server
from tests.support.xev import XevFile, needs_xev, typed

pytestmark = [
    needs_xev,
    pytest.mark.skipif(not CHROMIUM.exists(), reason="needs Debian chromium at /usr/bin/chromium"),
]
__all__ = ["xev"]  # the fixture


def test_keys_typed_while_reconnecting_reach_the_app_after_the_resume(
    e2e: E2E, browser: Browser, xev: XevFile
) -> None:
    """A lossy path cut the connection (5 % loss, 80 ms away: 4102, then a resume) and the
    keys typed meanwhile were gone: 52 of 60 characters reached the app."""
    server = xev_server(e2e, xev.path)
    ticket = server.launch("alice", "x")
    proxy = e2e.proxy(server.port)
    joined(server, browser, ticket, proxy.port)
    browser.wait("v.frames >= 1 && v.video.picture !== null")
    xev.ready()
    page = browser.page
    page.keyboard.type("ab")
    xev.wait_text("ab")

    proxy.control("cut")
    browser.wait("v.shown.some((s) => s.code === 4103)", timeout=8)
    assert not browser.view()["state"].startswith("connected")
    page.keyboard.type("cd")
    page.mouse.move(30, 30)
    page.keyboard.type("ef")
    proxy.control("restore")
    browser.wait("v.state === 'connected (resumed)' && v.paused === false", timeout=15)
    page.keyboard.type("g")
    xev.wait_text("abcdefg")
    assert typed(xev.events()) == "abcdefg"
    assert browser.errors == []
