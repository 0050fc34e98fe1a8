"""The Python terminal's FRP8 picture: the track's frames under the channel's palette tiles,
each tile handed to the video from the track frame (RTP timestamp) that brings it; fed by the
server's own split (media/track_tiles.py) into the terminal's decoder."""

from __future__ import annotations

import asyncio
from typing import Any

import numpy as np
from aiortc import RTCPeerConnection
from av.video.frame import VideoFrame
from numpy.typing import NDArray

from openfrp.media.track_tiles import TrackTiles, regions_frame
from openfrp.rtc import rtp_timestamp
from openfrp.terminal.track_picture import TrackPicture, at_or_after, tiles
from openfrp.terminal.video import VideoReceiver
from tests.test_track_tiles import H, W, changes, photo, text

TILE0 = [(0, 0, 64, 64)]


def flat(value: int, width: int = 128, height: int = 64) -> NDArray[np.uint8]:
    return np.full((height, width, 3), value, np.uint8)


def shown(picture: TrackPicture) -> tuple[int, int]:
    """The first two tiles' values in the picture."""
    out = picture.picture()
    assert out is not None
    return int(out[0, 0, 0]), int(out[0, 64, 0])


def drawn_tile(picture: TrackPicture, value: int) -> None:
    canvas = picture.sized(128, 64)
    canvas[:64, :64] = value
    picture.palette(TILE0)


def test_a_tile_turns_to_video_at_the_track_frame_that_brings_it() -> None:
    picture = TrackPicture()
    picture.frame(flat(50), 1000)
    drawn_tile(picture, 200)
    assert shown(picture) == (200, 50)  # the palette tile over the video
    picture.regions(2000, TILE0, 128, 64)
    picture.frame(flat(60), 1999)  # older than the frame that brings the tile: text stays
    assert shown(picture) == (200, 60)
    picture.frame(flat(70), 2000)
    assert shown(picture) == (70, 70)
    drawn_tile(picture, 210)  # a palette tile drawn since covers the video again
    assert shown(picture) == (210, 70)
    picture.frame(flat(80), 3000)
    assert shown(picture) == (210, 80)


def test_a_frame_that_came_before_its_regions_shows_them_at_once() -> None:
    picture = TrackPicture()
    drawn_tile(picture, 200)
    picture.frame(flat(90), 5000)
    picture.regions(4990, TILE0, 128, 64)
    assert shown(picture) == (90, 90)


def test_timestamps_wrap_and_unknown_ones_show_every_tile_named() -> None:
    assert at_or_after(0x10, 0xFFFFFFF0) and not at_or_after(0xFFFFFFF0, 0x10)
    picture = TrackPicture()
    picture.frame(flat(10), 0xFFFFFF00)
    drawn_tile(picture, 200)
    picture.regions(0xFFFFFFF0, TILE0, 128, 64)
    assert shown(picture) == (200, 10)
    picture.frame(flat(20), 0x10)
    assert shown(picture) == (20, 20)
    drawn_tile(picture, 200)
    picture.regions(0x20, TILE0, 128, 64)
    picture.frame(flat(30), None)
    assert shown(picture) == (30, 30)


def test_rectangles_past_the_picture_cost_only_its_tiles() -> None:
    assert list(tiles([(0, 0, 65535, 65535), (60, 60, 9, 9)], 128, 64)) == [
        (0, 0),
        (0, 1),
        (0, 0),
        (0, 1),
    ]
    picture = TrackPicture()
    drawn_tile(picture, 200)
    picture.frame(flat(10), 5)
    picture.regions(2, [(0, 0, 65535, 65535)] * 1000, 128, 64)
    assert shown(picture) == (10, 10) and not picture.since


def test_after_a_resize_the_tiles_wait_for_video_of_their_size() -> None:
    picture = TrackPicture()
    picture.frame(flat(40), 1)
    drawn_tile(picture, 200)
    canvas = picture.sized(256, 64)  # the screen grew: palette tiles of the new size first
    canvas[:, :64] = 220
    picture.palette(TILE0)
    out = picture.picture()
    assert out is not None and out.shape == (64, 256, 3)
    assert (out[0, 0, 0], out[0, 64, 0]) == (220, 0)  # black until video of this size
    picture.regions(5, [(64, 0, 64, 64)], 256, 64)
    picture.frame(flat(50), 9)  # a frame of the old size: nothing turns to video
    assert picture.since
    picture.frame(flat(60, 256), 10)
    assert shown(picture) == (220, 60) and not picture.since


def test_a_decoded_frame_turns_to_rgb_only_when_the_picture_is_asked_for() -> None:
    converted: list[str] = []

    class Decoded:
        width, height = 128, 64

        def __init__(self, value: int) -> None:
            self.value = value

        def to_ndarray(self, channel_last: bool = True, **kwargs: Any) -> NDArray[np.uint8]:
            converted.append(kwargs["format"])
            return flat(self.value)

    picture = TrackPicture()
    drawn_tile(picture, 200)
    picture.regions(7, TILE0, 128, 64)
    for value, rtp in ((10, 5), (20, 6), (30, 7)):
        picture.frame(Decoded(value), rtp)
    assert converted == [] and picture.size == (128, 64)
    assert shown(picture) == (30, 30)  # the tile turned to video with the frame of rtp 7
    assert shown(picture) == (30, 30) and converted == ["rgb24"]  # once, the newest frame
    picture.frame(flat(40), 8)
    assert shown(picture) == (40, 40) and converted == ["rgb24"]


def bgrx_frame(pixels: NDArray[np.uint8]) -> VideoFrame:
    return VideoFrame.from_ndarray(np.ascontiguousarray(pixels[:, :, 2::-1]), format="rgb24")


def settled(video: VideoReceiver) -> NDArray[np.uint8]:
    """The picture once the frames fed are decoded."""
    video.drain(5)
    out = video.picture()
    assert out is not None
    return out


def test_the_terminal_shows_the_servers_split_text_exact_and_the_photo_from_its_frame() -> None:
    reports: list[tuple[Any, ...]] = []
    video = VideoReceiver(lambda *item: reports.append(item))
    video.new_connection(over_track=True)
    tiles = TrackTiles()
    try:
        first = text()
        split = changes(tiles, first, True)
        for data in split.frames:
            assert video.feed(data) is not None
        assert split.video is not None
        video.feed_track(bgrx_frame(split.video), "vp8", 100)
        assert np.array_equal(settled(video), first[:, :, 2::-1])
        # A photo comes on the right: its tiles turn to video at the frame of RTP time 200.
        mixed = photo(first)
        split = changes(tiles, mixed, False)
        assert split.video is not None and split.regions
        video.feed(regions_frame(200, W, H, split.regions))
        assert np.array_equal(settled(video), first[:, :, 2::-1])  # not before its frame
        video.feed_track(bgrx_frame(split.video), None, 200)
        assert np.array_equal(settled(video), mixed[:, :, 2::-1])
        stats = video.stats(whole=True)
        assert (stats.codec, stats.track_frames, stats.width, stats.height) == ("vp8", 2, W, H)
        assert [kind for kind, *_ in reports] == ["shown"] * len(reports)  # no keyframe asked
        # A regions frame cut short: which tiles the video shows is lost, so every tile again.
        video.feed(regions_frame(300, W, H, split.regions)[:-3])
        settled(video)
        assert reports[-1][:2] == ("keyframe", "track regions: H.264 tiles frame cut short")
    finally:
        video.close()


def test_a_late_track_frame_after_a_fallback_to_frp7_leaves_frp7_frames_as_they_are() -> None:
    video = VideoReceiver(lambda *item: None)
    tiles = TrackTiles()
    try:
        video.new_connection(over_track=False)  # FRP7, after FRP8 fell back
        video.feed_track(bgrx_frame(photo(text())), "vp8", 7)  # the old track's last frame
        first = text()
        for data in changes(tiles, first, True).frames:  # a key palette frame, then H.264
            video.feed(data)
        moved = np.roll(first, 12, axis=0)
        for data in changes(tiles, moved, False).frames:
            video.feed(data)
        assert np.array_equal(settled(video), moved[:, :, 2::-1])
        assert video.stats(whole=True).codec == "palette"  # drawn as FRP7 frames
    finally:
        video.close()


def test_a_decoded_frames_rtp_timestamp_is_read_back_from_aiortcs_receiver() -> None:
    """aiortc rebases each decoded frame's timestamp on the first it received; the receiver
    keeps that origin (a private field: an aiortc that moves it fails here, not silently)."""

    async def main() -> None:
        pc = RTCPeerConnection()
        receiver = pc.addTransceiver("video", direction="recvonly").receiver
        try:
            assert rtp_timestamp(receiver, 5) is None  # nothing received yet
            mapper = receiver._RTCRtpReceiver__timestamp_mapper  # type: ignore[attr-defined]
            pts = [mapper.map(t) for t in (0xFFFFFED8, 0xFFFFFFA0, 100)]  # wrapping
            assert [rtp_timestamp(receiver, p) for p in pts] == [0xFFFFFED8, 0xFFFFFFA0, 100]
        finally:
            await pc.close()

    asyncio.run(main())
