"""How many pictures the stream keeps unacknowledged at once (RateControl.window), on a fake
clock in milliseconds: two on a near path, more where the round trip spans more frames (80 ms
away, two in flight drew 10.7-11.6 fps of a moving window in the browser, 21-22 with more),
never raised by a queue, lowered with the frame rate, forgotten with the connection."""

from __future__ import annotations

from openfrp.media.rate import RateControl
from openfrp.media.streamer import MAX_IN_FLIGHT, MOST_IN_FLIGHT


def _acked_after(rate: RateControl, frame: int, at: int, delay: int) -> None:
    rate.sent(frame, 1, at)
    rate.acked(frame, at + delay)


def test_a_near_path_keeps_two_and_a_far_one_as_many_as_its_round_trip_spans() -> None:
    near = RateControl(max_bitrate=10_000_000, max_fps=25)
    assert near.window(MAX_IN_FLIGHT, MOST_IN_FLIGHT) == 2  # the path not known yet
    _acked_after(near, 1, 0, 20)
    assert near.window(MAX_IN_FLIGHT, MOST_IN_FLIGHT) == 2

    far = RateControl(max_bitrate=10_000_000, max_fps=30)
    _acked_after(far, 1, 0, 100)  # 3 frames at 30 fps, and one more
    assert far.window(MAX_IN_FLIGHT, MOST_IN_FLIGHT) == 4
    _acked_after(far, 2, 1000, 400)  # a queue: the path's own delay stays the best one
    assert far.window(MAX_IN_FLIGHT, MOST_IN_FLIGHT) == 4

    farther = RateControl(max_bitrate=10_000_000, max_fps=30)
    _acked_after(farther, 1, 0, 300)
    assert farther.window(MAX_IN_FLIGHT, MOST_IN_FLIGHT) == MOST_IN_FLIGHT


def test_the_window_follows_the_frame_rate_down_and_the_connection_away() -> None:
    rate = RateControl(max_bitrate=10_000_000, max_fps=30)
    _acked_after(rate, 1, 0, 100)
    rate.fps = 10  # rate control lowered it: 1 frame in 100 ms, and one more
    assert rate.window(MAX_IN_FLIGHT, MOST_IN_FLIGHT) == 2
    rate.fps = 30
    rate.reset(5000)
    assert rate.window(MAX_IN_FLIGHT, MOST_IN_FLIGHT) == 2
