"""Headless Chromium (Debian chromium, driven by Playwright) for the browser terminal tests."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import av
import numpy as np
from numpy.typing import NDArray

from openfrp.protocol.terminal_connection import show
from tests.e2e.harness import ServerProcess

CHROMIUM = Path("/usr/bin/chromium")
ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
    "--disable-sync",
]


class Browser:
    """One page in headless Chromium; page errors are collected so a test can assert none."""

    def __init__(self, page: Any) -> None:
        self.page = page
        self.errors: list[str] = []
        self.console: list[str] = []
        page.on("pageerror", lambda e: self.errors.append(str(e)))
        page.on("console", lambda m: self.console.append(f"{m.type}: {m.text}"))

    def view(self) -> dict[str, Any]:
        data: dict[str, Any] = self.page.evaluate(
            "() => JSON.parse(JSON.stringify(window.openfrp))"
        )
        return data

    def wait(self, condition: str, timeout: float = 10.0) -> None:
        """Wait for a JavaScript expression over `v` (window.openfrp) to be true."""
        from playwright.sync_api import TimeoutError as PlaywrightTimeout

        try:
            self.page.wait_for_function(
                f"() => {{ const v = window.openfrp; return v !== undefined && ({condition}); }}",
                timeout=timeout * 1000,
            )
        except PlaywrightTimeout:
            data = self.page.evaluate("() => JSON.parse(JSON.stringify(window.openfrp || {}))")
            events = [
                (e["ts"][11:23], e["event"], e["code"], e["attrs"]) for e in data.pop("events", [])
            ]
            view = f"{data}\nevents: {events}"[:4000]
            raise AssertionError(
                f"not within {timeout}s: {condition}\nview: {view}\nerrors: {self.errors}\n"
                f"console: {self.console[-20:]}"
            ) from None

    def menu(self, item: str) -> None:
        """Choose a gear-menu item (its element id), as a person does: open the menu, click
        (twice for an item that asks once more)."""
        self.page.click("#gear")
        self.page.click(f"#menu #{item}")
        if self.page.get_attribute(f"#menu #{item}", "data-confirm") is not None:
            self.page.click(f"#menu #{item}")

    def popups(self) -> list[str]:
        texts: list[str] = self.page.locator("#popups .popup").all_inner_texts()
        return texts


def screenshot(browser: Browser, path: Path | None = None) -> NDArray[np.uint8]:
    """The page as a person sees it, as RGB pixels (and saved as PNG at `path`)."""
    page = browser.page.screenshot()
    if path is not None:
        path.write_bytes(page)
    with av.open(io.BytesIO(page)) as container:
        return np.asarray(next(container.decode(video=0)).to_ndarray(format="rgb24"))


def link(ticket: dict[str, Any], port: int) -> str:
    return f"http://127.0.0.1:{port}/s/{ticket['session_id']}?token={ticket['token']}"


def shown(code: int) -> str:
    """What the Python terminal shows for `code`; the page must say the same."""
    return show(code).text


def joined(server: ServerProcess, browser: Browser, ticket: dict[str, Any], port: int) -> None:
    browser.page.goto(link(ticket, port))
    browser.wait("v.state.startsWith('connected')")
    server.log.wait_event(event="session.started", session_id=ticket["session_id"])
