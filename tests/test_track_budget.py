"""The FRP8 track's budget (media/track_budget.py) on a fake clock in milliseconds: frames
bigger than the budget make fewer frames, heavy loss and a growing round trip lower the budget,
a little loss holds it, a calm second raises it again, never past the screen's ceiling. And
the track reading it from aiortc's sender statistics."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
from aiortc.stats import RTCOutboundRtpStreamStats, RTCRemoteInboundRtpStreamStats, RTCStatsReport
from numpy.typing import NDArray

from openfrp.media.track import DisplayTrack
from openfrp.media.track_budget import CALM_MS, DOWN, MAX_WAIT_MS, STEP_MS, UP, TrackBudget


def frames_sent(budget: TrackBudget, frame_bytes: int, seconds: int, fps: int = 30) -> int:
    """Frames a 30 fps source gets out in `seconds` when each costs `frame_bytes`."""
    sent_total, frames, now = 0, 0, 0
    while now < seconds * 1000:
        budget.sent(sent_total, now)
        wait = budget.wait_ms(now)
        if wait:
            now += wait
            continue
        sent_total += frame_bytes
        frames += 1
        now += 1000 // fps
    return frames


def test_frames_bigger_than_the_budget_go_out_less_often() -> None:
    budget = TrackBudget(1_000_000)
    small = frames_sent(TrackBudget(1_000_000), 2_000, 10)  # 0.48 Mbit/s at 30 fps: all
    assert small >= 295
    big = frames_sent(budget, 20_000, 10)  # 4.8 Mbit/s at 30 fps: about 6 a second
    assert 55 <= big <= 75, big
    assert budget.wait_ms(0) <= MAX_WAIT_MS


def test_loss_and_a_growing_round_trip_lower_it_and_calm_raises_it_to_the_ceiling() -> None:
    """Reports carry the receiver's cumulative counts (expected, lost)."""
    budget = TrackBudget(1_000_000)
    assert budget.report(0, 0, 20, 100) is False  # calm, and already at the ceiling
    assert budget.report(200, 24, 20, 600) is True  # 12 % lost
    assert budget.bitrate == int(1_000_000 * DOWN)
    assert budget.report(300, 36, 20, 700) is False  # one step per STEP_MS
    assert budget.report(300, 36, 20 + 400, 600 + STEP_MS) is True  # a queue: 400 ms above best
    assert budget.bitrate == int(int(1_000_000 * DOWN) * DOWN)
    lowered = budget.bitrate
    at = 600 + STEP_MS
    assert budget.report(400, 36, 20, at + CALM_MS - 1) is False  # not calm long enough yet
    assert budget.report(500, 36, 20, at + CALM_MS) is True
    assert budget.bitrate == int(lowered * UP)
    held, expected, lost = budget.bitrate, 500, 36
    for k in range(2, 6):  # 5 % lost, report after report: neither lowered nor raised
        expected, lost = expected + 100, lost + 5
        assert budget.report(expected, lost, 20, at + k * CALM_MS) is False
    assert budget.bitrate == held
    at += 5 * CALM_MS
    expected += 100
    assert budget.report(expected, lost, 20, at + CALM_MS - 1) is False  # calm from the last loss
    for k in range(1, 10):
        expected += 100
        budget.report(expected, lost, 20, at + k * CALM_MS)
    assert budget.bitrate == 1_000_000  # back to the ceiling, not past it
    budget.ceiling(400_000)  # the screen became smaller
    assert budget.bitrate == 400_000


def test_loss_is_counted_over_enough_packets_not_read_from_each_report() -> None:
    """Reports after NACKs cover a few packets each: one of three lost there reads 33 %."""

    def run(lost_every: int, reports: int) -> tuple[TrackBudget, list[int]]:
        budget, changed = TrackBudget(1_000_000), []
        budget.report(0, 0, 20, 0)
        for k in range(1, reports + 1):  # 3 packets a report, one lost in every lost_every-th
            if budget.report(3 * k, k // lost_every, 20, k * STEP_MS):
                changed.append(k)
        return budget, changed

    lossy, changed = run(2, 40)  # 17 %: lowered once a window of 100 packets is full
    assert changed[0] == 34 and lossy.bitrate < 1_000_000
    assert 0.15 < lossy.loss < 0.19
    steady, changed = run(6, 40)  # 5.6 %, each lossy report reading 33 %: held
    assert changed == [] and steady.bitrate == 1_000_000
    assert 0.04 < steady.loss < 0.07
    steady.report(10, 0, 20, 41 * STEP_MS)  # the receiver counts anew: a window starts there
    assert steady.report(120, 20, 20, 42 * STEP_MS) is True  # 20 of 110 lost: lowered


class Reports:
    """aiortc's statistics as an RTCRtpSender returns them: bytes sent, and the receiver's
    reports, each a new object with its own timestamp."""

    def __init__(self) -> None:
        self.sent, self.expected, self.lost, self.at = 0, 0, 0, 0

    async def getStats(self) -> RTCStatsReport:
        report = RTCStatsReport()
        stamp = datetime(2026, 1, 1, tzinfo=UTC) + timedelta(seconds=self.at)
        common = {"timestamp": stamp, "ssrc": 1, "kind": "video", "transportId": "t"}
        report["out"] = RTCOutboundRtpStreamStats(
            type="outbound-rtp", id="out", packetsSent=0, bytesSent=self.sent, trackId="v", **common
        )
        report["in"] = RTCRemoteInboundRtpStreamStats(
            type="remote-inbound-rtp", id="in", packetsReceived=self.expected - self.lost,
            packetsLost=self.lost, jitter=0, roundTripTime=0.02, fractionLost=0, **common,
        )  # fmt: skip
        return report


class Screen:
    def __init__(self) -> None:
        self.shade = 0

    def grab(self) -> NDArray[np.uint8]:
        self.shade = (self.shade + 1) % 256  # a new picture each time
        return np.full((90, 160, 4), self.shade, np.uint8)


def test_the_track_hears_the_receivers_loss_and_tells_the_log_once_in_a_while() -> None:
    async def run() -> tuple[list[dict[str, Any]], int, int]:
        screen, reports, told = Screen(), Reports(), []
        track = DisplayTrack(lambda: screen, max_fps=100)
        track.spend(reports, told.append)
        await track.recv()
        assert track.budget is not None
        ceiling = track.budget.max_bitrate
        for step in range(1, 8):  # a quarter of the packets lost, report after report
            reports.expected, reports.lost, reports.at = 200 * step, 50 * step, step
            await asyncio.sleep(STEP_MS / 1000)
            await track.recv()
        return told, track.budget.bitrate, ceiling

    told, bitrate, ceiling = asyncio.run(run())
    assert bitrate < int(ceiling * DOWN)  # lowered step after step
    assert told == [{"bitrate": int(ceiling * DOWN), "lost": 0.25, "rtt_ms": 20}]  # told once
