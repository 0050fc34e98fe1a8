"""The browser terminal's picture (static/video.js) in headless Chromium, fed wire frames made
here with real encoders (the server's H.264, JPEG and raw RGB ones; PyAV's libvpx): what the
canvas shows, in what colours, what the page acknowledges and asks for, and what it logs."""

from __future__ import annotations

import base64
from collections.abc import Callable, Iterator
from fractions import Fraction
from importlib import resources
from typing import Any

import av
import numpy as np
import pytest
from playwright.sync_api import Route

from openfrp.media.changes import changed_tiles
from openfrp.media.encoder import H264Encoder, JpegEncoder, RgbZlibEncoder
from openfrp.media.mixed import MixedCanvas, pack_regions
from openfrp.media.palette import encode_palette
from openfrp.media.rows import RowIndex
from openfrp.media.wire import (
    CODEC_H264,
    CODEC_JPEG,
    CODEC_PALETTE,
    CODEC_RGB_ZLIB,
    CODEC_VP8,
    FLAG_KEY,
    FLAG_MORE,
    FLAG_TILES,
    pack_frame,
)
from tests.e2e.browser import CHROMIUM, Browser
from tests.test_palette import coloured
from tests.test_stream_media import text_picture

pytestmark = pytest.mark.skipif(
    not CHROMIUM.exists(), reason="needs Debian chromium at /usr/bin/chromium"
)

ORIGIN = "http://127.0.0.1:9"  # served by the test itself (page.route): a secure context
W, H = 320, 240
RED, BLUE, GREEN = (230, 20, 20), (20, 20, 230), (20, 200, 20)
PAGE = """<!DOCTYPE html><html><body style="margin:0"><canvas id="screen"></canvas>
<script src="/terminal/palette.js"></script>
<script src="/terminal/video.js"></script>
<script>
  window.sent = []; window.logs = [];
  const counters = { received: () => {}, drawn: () => {}, dropped: () => {} };
  window.ready = OpenfrpVideo.probeDecoders().then((decoders) => {
    window.stream = new OpenfrpVideo.VideoStream(document.getElementById("screen"), decoders, {
      send: (m) => window.sent.push(m), stats: counters,
      log: (event, attrs, severity) => window.logs.push({ event, attrs, severity }) });
    window.stream.started();
    window.stream.connected = true;
    return decoders;
  });
  window.feed = (b64) => window.stream.frame(
    Uint8Array.from(atob(b64), (c) => c.charCodeAt(0)).buffer);
  window.pixel = (x, y) => [...document.getElementById("screen").getContext("2d")
    .getImageData(x, y, 1, 1).data.slice(0, 3)];
</script></body></html>"""


Pixels = np.ndarray[Any, np.dtype[np.uint8]]


def picture(right: tuple[int, int, int] = BLUE) -> Pixels:
    """Red on the left half, `right` on the right half, as a screen grab is: BGRX."""
    bgrx = np.full((H, W, 4), 255, np.uint8)
    bgrx[:, : W // 2, 2::-1] = RED
    bgrx[:, W // 2 :, 2::-1] = right
    return bgrx


def encoded(codec: str, pictures: list[Pixels]) -> list[bytes]:
    """One payload per picture, the first a keyframe: the server's H.264 encoder, or VP8."""
    if codec == "h264":
        h264 = H264Encoder(W, H, 2_000_000)
        return [h264.encode(bgrx, index == 0)[0] for index, bgrx in enumerate(pictures)]
    encoder = av.CodecContext.create("libvpx", "w")
    encoder.width, encoder.height, encoder.pix_fmt = W, H, "yuv420p"
    encoder.time_base = Fraction(1, 30)
    encoder.options = {"deadline": "realtime", "lag-in-frames": "0"}
    packets = []
    for index, bgrx in enumerate(pictures):
        frame = av.VideoFrame.from_ndarray(bgrx, format="bgra")
        frame.pts = index
        packets += encoder.encode(frame)
    packets += encoder.encode(None)
    assert len(packets) == len(pictures) and packets[0].is_keyframe
    return [bytes(p) for p in packets]


class Page:
    def __init__(self, browser: Browser, decoders: list[str]) -> None:
        self.browser = browser
        self.page = browser.page
        self.decoders = decoders

    def feed(self, number: int, codec: int, payload: bytes, key: bool = True) -> None:
        data = pack_frame(number, W, H, codec, FLAG_KEY if key else 0, payload)
        self.page.evaluate("(b) => window.feed(b)", base64.b64encode(data).decode())

    def wait(self, condition: str) -> None:
        self.page.wait_for_function(f"() => {condition}", timeout=5000)

    def sent(self, kind: str) -> list[dict[str, Any]]:
        sent: list[dict[str, Any]] = self.page.evaluate("() => window.sent")
        return [m for m in sent if m["type"] == kind]

    def acks(self) -> list[int]:
        return [m["frame"] for m in self.sent("frame_ack")]

    def pixel(self, x: int, y: int) -> tuple[int, int, int]:
        r, g, b = self.page.evaluate("([x, y]) => window.pixel(x, y)", [x, y])
        return int(r), int(g), int(b)

    def picture(self) -> Pixels:
        """The page's picture of the session's screen, as RGB."""
        data = self.page.evaluate(
            """() => { const c = window.stream.picture;
                 const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
                 let s = ''; for (let i = 0; i < d.length; i++) s += String.fromCharCode(d[i]);
                 return btoa(s); }"""
        )
        rgba = np.frombuffer(base64.b64decode(data), np.uint8).reshape(H, W, 4)
        return np.ascontiguousarray(rgba[:, :, :3])

    def view(self) -> dict[str, Any]:
        data: dict[str, Any] = self.page.evaluate("() => window.stream.view")
        return data

    def logs(self) -> list[dict[str, Any]]:
        logs: list[dict[str, Any]] = self.page.evaluate("() => window.logs")
        return logs


def near(actual: tuple[int, int, int], want: tuple[int, int, int], slack: int = 40) -> bool:
    return all(abs(a - w) <= slack for a, w in zip(actual, want, strict=True))


def _serve(body: str, content_type: str) -> Callable[[Route], None]:
    return lambda route: route.fulfill(body=body, content_type=content_type)


@pytest.fixture
def video(browser: Browser) -> Iterator[Page]:
    static = resources.files("openfrp.terminal").joinpath("static")
    browser.page.set_viewport_size({"width": W, "height": H})
    for script in ("palette.js", "video.js"):
        body = static.joinpath(script).read_text()
        browser.page.route(f"{ORIGIN}/terminal/{script}", _serve(body, "text/javascript"))
    browser.page.route(
        f"{ORIGIN}/", lambda route: route.fulfill(body=PAGE, content_type="text/html")
    )
    browser.page.goto(f"{ORIGIN}/")
    decoders = browser.page.evaluate("() => window.ready")
    yield Page(browser, decoders)
    assert browser.errors == []


def test_this_chromium_offers_h264_first(video: Page) -> None:
    assert video.decoders == ["h264", "vp8", "jpeg", "palette", "rgb-zlib"]


@pytest.mark.parametrize(("codec", "wire"), [("h264", CODEC_H264), ("vp8", CODEC_VP8)])
def test_video_frames_are_drawn_at_1to1_and_each_acknowledged(
    video: Page, codec: str, wire: int
) -> None:
    packets = encoded(codec, [picture(), picture(), picture(GREEN)])
    for number, packet in enumerate(packets, 1):
        video.feed(number, wire, packet, key=number == 1)
    video.wait("window.stream.view.drawn === 3")
    assert video.acks() == [1, 2, 3]
    # In the colours the server means (BT.601, as its RGB->YUV conversion), not a BT.709 cast.
    assert near(video.pixel(40, 120), RED, 10) and near(video.pixel(280, 120), GREEN, 10)
    view = video.view()
    assert view["picture"] == {"x": 0, "y": 0, "width": W, "height": H, "scale": 1}
    assert view["remote"] == {"width": W, "height": H}
    assert [(e["event"], e["attrs"]["codec"]) for e in video.logs()] == [("stream.decoder", codec)]
    assert video.sent("keyframe") == []


def test_deltas_wait_for_a_keyframe_which_is_asked_for(video: Page) -> None:
    key, delta, later = encoded("h264", [picture(), picture(GREEN), picture(GREEN)])
    video.feed(7, CODEC_H264, delta, key=False)  # a connection's stream starts mid-way
    video.wait("window.stream.view.dropped === 1")
    assert video.sent("keyframe") == [{"type": "keyframe", "reason": "start"}]
    video.feed(8, CODEC_H264, key)
    video.feed(9, CODEC_H264, delta, key=False)
    video.wait("window.stream.view.drawn === 2")
    video.feed(11, CODEC_H264, later, key=False)  # frame 10 never came: a gap
    video.wait("window.stream.view.dropped === 2")
    assert video.sent("keyframe")[-1] == {"type": "keyframe", "reason": "gap"}
    assert video.acks() == [7, 8, 9, 11]  # every frame, drawn or not, exactly once
    assert near(video.pixel(280, 120), GREEN)


def test_a_decoder_error_resets_the_decoder_and_asks_for_a_keyframe(video: Page) -> None:
    key, delta = encoded("h264", [picture(), picture(GREEN)])
    video.feed(1, CODEC_H264, key)
    video.wait("window.stream.view.drawn === 1")
    garbage = key[: len(key) // 3] + bytes(range(256)) * 4  # a keyframe cut and garbled
    video.feed(2, CODEC_H264, garbage)
    video.feed(3, CODEC_H264, delta, key=False)
    video.wait("window.sent.some((m) => m.type === 'keyframe')")
    reasons = [m["reason"] for m in video.sent("keyframe")]
    assert reasons[0].startswith("decoder error: ")
    errors = [e for e in video.logs() if e["event"] == "stream.decoder_error"]
    assert errors[0]["attrs"]["codec"] == "h264" and errors[0]["severity"] == "warning"
    video.feed(4, CODEC_H264, key)
    video.wait("window.stream.view.drawn === 2")
    video.wait("window.sent.filter((m) => m.type === 'frame_ack').length === 4")
    assert sorted(video.acks()) == [1, 2, 3, 4]
    assert near(video.pixel(280, 120), BLUE)


def test_jpeg_and_raw_rgb_frames_are_drawn_scaled_to_the_window(video: Page) -> None:
    video.page.set_viewport_size({"width": 2 * W, "height": 2 * H + 100})
    video.wait(f"window.stream.view.screen.width === {2 * W}")
    video.feed(1, CODEC_JPEG, JpegEncoder(W, H).encode(picture(), True)[0])
    video.wait("window.stream.view.drawn === 1")
    # Twice the size, centred: 50 black rows above and below.
    assert video.view()["picture"] == {"x": 0, "y": 50, "width": 2 * W, "height": 2 * H, "scale": 2}
    assert near(video.pixel(10, 25), (0, 0, 0), 0)
    assert near(video.pixel(100, 300), RED) and near(video.pixel(600, 300), BLUE)
    raw = RgbZlibEncoder(W, H).encode(picture(GREEN), True)[0]
    video.feed(2, CODEC_RGB_ZLIB, raw)
    video.feed(3, CODEC_RGB_ZLIB, raw[:-9])  # truncated: not drawn, still acknowledged
    video.wait("window.sent.filter((m) => m.type === 'frame_ack').length === 3")
    assert video.view()["drawn"] == 2 and video.view()["dropped"] == 1
    assert near(video.pixel(600, 300), GREEN, 0) and near(video.pixel(100, 300), RED, 0)
    assert [e["attrs"]["codec"] for e in video.logs() if e["event"] == "stream.decoder"] == [
        "jpeg",
        "rgb-zlib",
    ]
    assert video.sent("keyframe") == []
    # The page says where the person's pointer is on the session's screen.
    assert video.page.evaluate("() => window.stream.toRemote(639, 529)") == {"x": 319, "y": 239}
    assert video.page.evaluate("() => window.stream.toRemote(10, 20)") is None


def test_two_pictures_that_come_together_are_shown_in_frames_of_their_own(video: Page) -> None:
    """Pictures fed two at a time: each is on the screen for a rendered frame of its own, none
    drawn over before it was shown (the old page drew each pair in one frame)."""
    video.page.evaluate(
        """() => {
        window.frameNo = 0;
        const loop = () => { window.frameNo += 1; requestAnimationFrame(loop); };
        requestAnimationFrame(loop);
        window.shownIn = [];
        window.stream.hooks.stats.drawn = () => window.shownIn.push(window.frameNo);
      }"""
    )
    colours = [RED, BLUE, GREEN, (200, 200, 20), (20, 200, 200), (200, 20, 200)]
    encoder = RgbZlibEncoder(W, H)
    frames = [
        base64.b64encode(
            pack_frame(n, W, H, CODEC_RGB_ZLIB, FLAG_KEY, encoder.encode(picture(c), True)[0])
        ).decode()
        for n, c in enumerate(colours, 1)
    ]
    for pair in range(0, len(frames), 2):
        video.page.evaluate(
            "(frames) => frames.forEach((b) => window.feed(b))", frames[pair : pair + 2]
        )
        video.wait(f"window.stream.view.drawn === {pair + 2}")
        # The next pair comes once the last picture was on the screen (two frames on): one
        # that came sooner would find a picture still waiting, and that one is drawn at once
        # so that no picture lags by more than a frame.
        video.wait("window.frameNo >= window.shownIn[window.shownIn.length - 1] + 2")
    assert video.acks() == [1, 2, 3, 4, 5, 6]
    shown_in = video.page.evaluate("() => window.shownIn")
    assert len(shown_in) == 6 and len(set(shown_in)) == 6, shown_in
    assert near(video.pixel(280, 120), colours[-1], 0)


def test_palette_tiles_are_drawn_exactly_over_the_h264_picture(video: Page) -> None:
    """The mixed stream: an H.264 picture, then text-like tiles in palette colours over it
    (drawn exactly, after the H.264 frame before them), then H.264 again over everything."""
    first, later = picture(), picture()
    text = np.zeros((64, 64, 4), np.uint8)  # one tile: a checkerboard in two exact colours
    text[::2, ::2, 2::-1] = text[1::2, 1::2, 2::-1] = (255, 255, 255)
    later[64:128, 192:256] = text
    h264 = H264Encoder(W, H, 2_000_000)
    video.feed(1, CODEC_H264, h264.encode(first, True)[0])
    video.feed(2, CODEC_PALETTE, encode_palette(later, changed_tiles(first, later)), key=False)
    video.wait("window.stream.view.drawn === 2")
    assert video.pixel(192, 64) == (255, 255, 255) and video.pixel(193, 64) == (0, 0, 0)
    assert video.pixel(193, 65) == (255, 255, 255) and near(video.pixel(280, 200), BLUE, 10)
    video.feed(3, CODEC_H264, h264.encode(picture(GREEN), False)[0], key=False)
    video.wait("window.stream.view.drawn === 3")
    assert near(video.pixel(193, 65), GREEN, 10) and near(video.pixel(40, 120), RED, 10)
    assert video.acks() == [1, 2, 3] and video.view()["palette"] == 1
    assert video.sent("keyframe") == []
    cut = encode_palette(later, changed_tiles(first, later))
    assert cut is not None
    video.feed(4, CODEC_PALETTE, cut[:-6], key=False)  # cut short: dropped, a keyframe asked
    video.wait("window.sent.some((m) => m.type === 'keyframe')")
    assert video.acks() == [1, 2, 3, 4] and video.view()["dropped"] == 1


def test_palette_frames_of_every_index_width_are_drawn_exactly(video: Page) -> None:
    """1, 2, 4 and 8 bits an index, with and without the row cache: the page reads the bands
    of 8 / bits rows the encoder packs (237 rows: the last band is padded)."""
    index, number = RowIndex(), 0
    for colours in (2, 3, 16, 256):
        shown = coloured(colours, 237, W)
        for rows in (None, index):
            number += 1
            payload = encode_palette(shown, changed_tiles(None, shown), rows)
            assert payload is not None
            video.feed(number, CODEC_PALETTE, payload, key=True)
            video.wait(f"window.stream.view.drawn === {number}")
            assert np.array_equal(video.picture()[:237], shown[:, :, 2::-1]), (colours, rows)


def test_rows_the_page_drew_before_come_back_from_its_row_cache(video: Page) -> None:
    """Palette frames with the row cache: a screen of text, the same scrolled by 3 lines
    (most rows sent as ids), exact; after a lost frame, ids are refused until a reset."""
    index = RowIndex()
    first = text_picture(W, H)
    second = np.concatenate([first[42:], text_picture(W, H, seed=8)[:42]])
    for number, shown in ((1, first), (2, second)):
        payload = encode_palette(shown, changed_tiles(None, shown), index)
        assert payload is not None
        video.feed(number, CODEC_PALETTE, payload, key=number == 1)
        video.wait(f"window.stream.view.drawn === {number}")
        assert np.array_equal(video.picture(), shown[:, :, 2::-1])
    whole = encode_palette(second, changed_tiles(None, second))
    assert whole is not None and len(payload) * 3 < len(whole)
    narrow = np.zeros((4, 5), np.bool_)
    narrow[:, :2] = True  # rows remembered 320 wide, cut to 128; the rest stays as it was
    third = np.concatenate([second[14:], second[:14]])
    cut = encode_palette(third, narrow, index)
    assert cut is not None
    video.feed(3, CODEC_PALETTE, cut, key=False)
    video.wait("window.stream.view.drawn === 3")
    expected = second[:, :, 2::-1].copy()
    expected[:, :128] = third[:, :128, 2::-1]
    assert np.array_equal(video.picture(), expected)
    video.page.evaluate("() => window.stream.loseRows()")  # as after a skipped frame
    again = encode_palette(first, changed_tiles(None, first), index)
    assert again is not None
    video.feed(4, CODEC_PALETTE, again, key=False)
    video.wait("window.sent.some((m) => m.type === 'keyframe')")
    assert [e["attrs"]["error"] for e in video.logs() if e["event"] == "stream.decoder_error"]
    index.fresh = True  # the keyframe: the cache starts over at both ends
    key = encode_palette(first, changed_tiles(None, first), index)
    assert key is not None
    video.feed(5, CODEC_PALETTE, key)
    video.wait("window.stream.view.drawn === 4")
    assert np.array_equal(video.picture(), first[:, :, 2::-1])
    assert video.acks() == [1, 2, 3, 4, 5]
    # Frames lost on the way: what follows goes on from deflate-stream parts the page never
    # had, so it is refused, and the next reset draws exactly, nothing left waiting.
    lost, after = text_picture(W, H, seed=11), text_picture(W, H, seed=12)
    for shown in (lost, after, after[::-1]):
        payload = encode_palette(shown, changed_tiles(None, shown), index)
        assert payload is not None
        if shown is not lost:
            video.feed(7 if shown is after else 8, CODEC_PALETTE, payload, key=False)
    index.fresh = True
    key = encode_palette(second, changed_tiles(None, second), index)
    assert key is not None
    video.feed(9, CODEC_PALETTE, key)
    video.wait("window.stream.view.drawn === 5")
    assert np.array_equal(video.picture(), second[:, :, 2::-1])
    assert video.acks() == [1, 2, 3, 4, 5, 7, 8, 9]


def test_h264_tiles_leave_the_palette_tiles_beside_them_exact(video: Page) -> None:
    """The mixed stream as the server sends it: a noise tile goes as H.264 naming only its
    tile, the checkerboard beside it as palette tiles, which no H.264 frame blurs."""
    rng = np.random.default_rng(5)

    def blocks() -> Pixels:  # 1024 colours in 2x2 blocks: too many for a palette tile
        return np.repeat(np.repeat(rng.integers(0, 256, (32, 32, 4), np.uint8), 2, 0), 2, 1)

    first = picture()
    first[64:128, 192:256, :3] = 0
    first[64:128:2, 192:256:2, :3] = first[65:128:2, 193:256:2, :3] = 255
    first[128:192, 64:128] = blocks()
    second = first.copy()
    second[128:192, 64:128] = blocks()
    encoder = H264Encoder(W, H, 2_000_000)
    canvas = MixedCanvas(changed_tiles(None, first))
    frames = list(canvas.encode(encoder, first, changed_tiles(None, first), True, False))
    frames += canvas.encode(encoder, second, changed_tiles(first, second), False, False)
    assert [f.codec for f in frames] == [CODEC_PALETTE, CODEC_H264, CODEC_H264]
    assert frames[0].flags & FLAG_MORE  # the first picture is two frames
    for number, frame in enumerate(frames, 1):
        data = pack_frame(number, W, H, frame.codec, frame.flags, frame.payload)
        video.page.evaluate("(b) => window.feed(b)", base64.b64encode(data).decode())
    video.wait("window.sent.filter((m) => m.type === 'frame_ack').length === 3")
    assert video.view()["drawn"] == 2 and video.view()["palette"] == 1  # pictures drawn
    assert video.pixel(192, 64) == (255, 255, 255) and video.pixel(193, 64) == (0, 0, 0)
    assert video.pixel(194, 66) == (255, 255, 255) and video.pixel(40, 20) == RED
    centres = [(64 + 2 * i, 128 + 2 * j) for i in range(1, 32, 5) for j in range(1, 32, 7)]
    drawn = [video.pixel(x, y) for x, y in centres]
    truth = [tuple(int(c) for c in second[y, x, 2::-1]) for x, y in centres]
    close = sum(near(d, t, 60) for d, t in zip(drawn, truth, strict=True))
    assert close >= len(centres) * 3 // 4, (drawn, truth)  # the second blocks, through H.264
    assert video.acks() == [1, 2, 3] and video.sent("keyframe") == []


def hold(video: Page, number: int, region: tuple[int, int, int, int]) -> None:
    """A frame still in the page's decoder that draws `region` (until an H.264 frame after
    it comes out, or `release`)."""
    video.page.evaluate(
        "([n, r]) => { window.stream.inDecoder.push(n); window.stream.regions.set(n, [r]); }",
        [number, list(region)],
    )


def release(video: Page) -> None:
    video.page.evaluate("() => { window.stream.inDecoder.length = 0; window.stream.wakeClear(); }")


def test_palette_tiles_wait_only_for_h264_frames_that_draw_where_they_do(video: Page) -> None:
    """Text beside a video: palette tiles are drawn at once while an H.264 frame elsewhere
    is still decoding, and after it where that frame draws over them."""
    first = picture()
    h264 = H264Encoder(W, H, 2_000_000)
    video.feed(1, CODEC_H264, h264.encode(first, True)[0])
    video.wait("window.stream.view.drawn === 1")
    hold(video, 90, (0, 0, 64, 64))
    beside = first.copy()
    beside[128:192, 192:256, :3] = 255
    video.feed(2, CODEC_PALETTE, encode_palette(beside, changed_tiles(first, beside)), key=False)
    video.wait("window.stream.view.palette === 1")
    assert video.pixel(200, 150) == (255, 255, 255)
    over = beside.copy()
    over[0:64, 0:64, :3] = 0
    video.feed(3, CODEC_PALETTE, encode_palette(over, changed_tiles(beside, over)), key=False)
    video.page.wait_for_timeout(300)
    assert video.view()["palette"] == 1 and near(video.pixel(10, 10), RED, 10)
    release(video)
    video.wait("window.stream.view.palette === 2")
    assert video.pixel(10, 10) == (0, 0, 0)
    assert video.acks() == [1, 2, 3]


def test_h264_tiles_wait_only_for_palette_tiles_under_them(video: Page) -> None:
    """An H.264 frame's tiles are decoded at once beside palette tiles still waiting to be
    drawn, and after them where they overlap."""
    first = picture()
    h264 = H264Encoder(W, H, 2_000_000)
    video.feed(1, CODEC_H264, h264.encode(first, True)[0])
    video.wait("window.stream.view.drawn === 1")

    def tiles(number: int, region: tuple[int, int, int, int]) -> None:
        unit = pack_regions([region], h264.encode(picture(GREEN), False)[0])
        data = pack_frame(number, W, H, CODEC_H264, FLAG_TILES, unit)
        video.page.evaluate("(b) => window.feed(b)", base64.b64encode(data).decode())

    white = first.copy()
    white[0:64, 0:64, :3] = 255
    hold(video, 90, (0, 0, 64, 64))  # the palette tiles below wait for it
    video.feed(2, CODEC_PALETTE, encode_palette(white, changed_tiles(first, white)), key=False)
    tiles(3, (256, 0, 64, 64))  # elsewhere: decoded now (its output gives up frame 90)
    video.wait("window.stream.view.palette === 1")
    assert near(video.pixel(300, 10), GREEN, 10) and video.pixel(10, 10) == (255, 255, 255)
    black = white.copy()
    black[0:64, 0:64, :3] = 0
    hold(video, 91, (0, 0, 64, 64))
    video.feed(4, CODEC_PALETTE, encode_palette(black, changed_tiles(white, black)), key=False)
    tiles(5, (0, 0, 64, 64))  # over the waiting palette tiles: decoded after them
    video.page.wait_for_timeout(300)
    assert video.pixel(10, 10) == (255, 255, 255)
    release(video)
    video.wait("window.stream.view.palette === 2")
    video.wait("window.sent.some((m) => m.type === 'frame_ack' && m.frame === 5)")
    assert near(video.pixel(10, 10), RED, 10)
    assert video.sent("keyframe") == []
