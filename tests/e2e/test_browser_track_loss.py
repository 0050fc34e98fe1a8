"""FRP8 over a lossy path: coturn runs in a network namespace of the test's own, where nft drops
5 % of the UDP coming in over its veth pair, so both directions of the relayed media lose
packets, the video track and the data channel alike. Changes drawn while the path loses
packets still reach the page: the xterm's text pixel for pixel (palette tiles, retransmitted
on the data channel), a gradient beside it as video (NACK repairs the track). Neither side
sees a code, and 12 s of a moving gradient do not bring the track's budget down."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from numpy.typing import NDArray

from openfrp.media.streamer import max_bitrate
from openfrp.media.track_budget import DOWN
from tests.e2e.browser import CHROMIUM, Browser
from tests.e2e.conftest import E2E
from tests.e2e.test_browser_track_text import (
    OVER,
    PAGE,
    closed,
    gradients_come_and_go,
    moving_gradient,
    put,
    session,
    settles,
)
from tests.e2e.test_sharp_text import LISTING, still_screen
from tests.e2e.test_terminal_picture import needs_x
from tests.support.coturn import TURNSERVER, Coturn, start_coturn
from tests.support.netns import Namespace

pytestmark = pytest.mark.skipif(
    TURNSERVER is None
    or not CHROMIUM.exists()
    or os.geteuid() != 0
    or not all(shutil.which(tool) for tool in ("ip", "nft")),
    reason="needs root, ip, nft, coturn and Debian chromium",
)

LOSS = 5.0  # % of the UDP datagrams coming in to coturn


@pytest.fixture
def lossy_turn(tmp_path: Path) -> Iterator[tuple[Namespace, Coturn]]:
    with Namespace() as namespace:
        turn = start_coturn(tmp_path, prefix=namespace.prefix, host=namespace.ns_ip)
        try:
            yield namespace, turn
        finally:
            turn.stop()


@needs_x
def test_text_and_video_drawn_over_a_five_percent_lossy_path_reach_the_page(
    e2e: E2E, browser: Browser, lossy_turn: tuple[Namespace, Coturn]
) -> None:
    namespace, turn = lossy_turn
    server, sid = session(e2e, turn, browser, LISTING)
    truth = still_screen(server, sid)
    browser.wait("v.track !== undefined && v.track.frames >= 1 && v.video.palette >= 1", 20)
    namespace.drop_share(LOSS)
    x, y, w, h = OVER
    inside = (slice(y, y + h), slice(x, x + w))

    def near(shot: NDArray[np.uint8], drawn: NDArray[np.uint8]) -> bool:
        return bool(np.abs(shot[inside].astype(int) - drawn[inside]).mean() < 6)

    def exact() -> bool:
        back = settles(browser, lambda shot: np.array_equal(shot[PAGE], truth[PAGE]), 15)
        return np.array_equal(back[PAGE], truth[PAGE])

    def video(drawn: NDArray[np.uint8]) -> bool:
        return near(settles(browser, lambda shot: near(shot, drawn), 15), drawn)

    # Drawn and taken back while the path loses packets, then 12 s of a moving gradient, past
    # the 10 s between two logs of the budget's moves: one unlucky window of 100 packets may
    # lower it once or twice, but 5 % of loss does not bring it down (reading each report's
    # loss, it fell to the floor, 150 kbit/s, within seconds).
    gradients_come_and_go(server, sid, OVER, truth, video, exact)
    moving_gradient(server, sid, OVER, 12)
    put(server, sid, x, y, truth[inside])
    assert exact()
    floor = max_bitrate(truth.shape[1], truth.shape[0]) * DOWN * DOWN
    budgets = [e["attrs"]["bitrate"] for e in server.log.find(event="stream.budget")]
    assert all(bitrate >= floor for bitrate in budgets), budgets
    namespace.drop_share(0)
    closed(browser)
    coded = [e for e in server.log.events() if e.get("code") not in (None, 4000)]
    assert coded == []
