"""FRP7 over a lossy path: the page's WebSocket runs through a relay in a network namespace of
the test's own, where nft drops 5 % of the TCP segments coming in over its veth pair, so both
directions lose segments and TCP sends them again (a stall of a round trip, or of its 200 ms
timer when a resent segment is lost too). Changes drawn meanwhile still reach the page: the
xterm's text pixel for pixel (palette tiles), a gradient beside it as H.264, 10 s of it moving
too; the rate control keeps its bitrate, and neither side sees a code."""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from numpy.typing import NDArray

from openfrp.media.rate import DOWN
from openfrp.media.streamer import max_bitrate
from tests.e2e.browser import CHROMIUM, Browser, joined
from tests.e2e.conftest import E2E
from tests.e2e.harness import ServerProcess
from tests.e2e.test_browser_desktop import covered, page_picture
from tests.e2e.test_browser_track_text import (
    closed,
    gradients_come_and_go,
    moving_gradient,
    put,
)
from tests.e2e.test_sharp_text import LISTING, still_screen
from tests.e2e.test_terminal_picture import needs_x
from tests.support.faultproxy import ProxyProcess, start_proxy_process, start_route_through
from tests.support.netns import Namespace

pytestmark = pytest.mark.skipif(
    not CHROMIUM.exists() or os.geteuid() != 0 or not all(shutil.which(t) for t in ("ip", "nft")),
    reason="needs root, ip, nft and Debian chromium",
)

LOSS = 5.0  # % of the TCP segments coming in to the relay inside the namespace
AT = (400, 40, 160, 120)  # x, y, width, height of the gradient, beside the xterm's text


@pytest.fixture
def lossy() -> Iterator[tuple[Namespace, list[ProxyProcess]]]:
    """The namespace, and where the relays through it go once started (stopped at the end)."""
    relays: list[ProxyProcess] = []
    with Namespace() as namespace:
        try:
            yield namespace, relays
        finally:
            for relay in reversed(relays):
                relay.stop()


def shown(browser: Browser, tmp_path: Path) -> tuple[NDArray[np.uint8], NDArray[np.bool_]]:
    """The page's picture of the screen and where nothing of the page floats over it."""
    picture, at = page_picture(browser, tmp_path / "page.png")
    mask = np.ones(picture.shape[:2], bool)
    for x0, y0, x1, y1 in covered(browser):
        mask[max(0, y0 - at["y"]) : max(0, y1 - at["y"]), max(0, x0 - at["x"]) : x1] = False
    return picture, mask


def settles(browser: Browser, tmp_path: Path, test: Any, timeout: float = 15.0) -> bool:
    deadline = time.monotonic() + timeout
    while True:
        if test(*shown(browser, tmp_path)):
            return True
        if time.monotonic() > deadline:
            return False
        time.sleep(0.2)


@needs_x
def test_text_and_video_drawn_over_a_five_percent_lossy_path_reach_the_page(
    e2e: E2E, browser: Browser, lossy: tuple[Namespace, list[ProxyProcess]], tmp_path: Path
) -> None:
    namespace, relays = lossy
    server: ServerProcess = e2e.server(
        server={"display": "xvfb", "video_fps": 30},
        launchpads={"x": {"app_command": LISTING, "display_ready_timeout": 10.0}},
    )
    relays.extend(start_route_through(namespace, server.port))
    relays.append(start_proxy_process(relays[0].port, target_host=namespace.ns_ip))
    ticket = server.launch("alice", "x")
    sid = ticket["session_id"]
    joined(server, browser, ticket, relays[-1].port)
    truth = still_screen(server, sid)
    assert settles(browser, tmp_path, lambda p, m: np.array_equal(p[m], truth[m]))
    namespace.drop_share(LOSS, "tcp")
    x, y, w, h = AT
    inside = (slice(y, y + h), slice(x, x + w))

    def exact() -> bool:
        return settles(browser, tmp_path, lambda p, m: np.array_equal(p[m], truth[m]))

    def video(drawn: NDArray[np.uint8]) -> bool:
        def near(picture: NDArray[np.uint8], _: NDArray[np.bool_]) -> bool:
            return bool(np.abs(picture[inside].astype(int) - drawn[inside]).mean() < 6)

        return settles(browser, tmp_path, near)

    gradients_come_and_go(server, sid, AT, truth, video, exact)
    moving_gradient(server, sid, AT, 10)
    put(server, sid, x, y, truth[inside])
    assert exact()
    assert namespace.retransmitted() > 0
    namespace.drop_share(0, "tcp")
    closed(browser)
    stats = [e["attrs"] for e in server.log.find(event="stats") if e.get("source") == "server"]
    assert stats, "the server logged no stream stats"
    # A resent segment lost again stalls the stream past the lag that counts as a queue
    # (LAG_MS): that may lower the bitrate a step or two; 5 % of loss does not bring it down.
    floor = max_bitrate(stats[0]["width"], stats[0]["height"]) * DOWN * DOWN
    assert all(s["bitrate_target"] >= floor for s in stats), stats
    coded = [e for e in server.log.events() if e.get("code") not in (None, 4000)]
    assert coded == []
