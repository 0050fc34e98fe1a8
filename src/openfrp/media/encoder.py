"""Encoders: a screen picture (BGRX numpy array) in, one wire frame's payload out.

H.264 is libx264 through PyAV, set up for a remote desktop: ultrafast, zerolatency, no
B-frames, constrained baseline (what WebCodecs decodes as avc1.42E0xx), Annex B with SPS/PPS
in every keyframe, and keyframes only when asked for.

The bitrate can change between frames only in x264's CBR mode (VBV max rate = bitrate): a new
`bit_rate` reaches x264_encoder_reconfig, which moves both the target and the VBV max rate
(measured: a quarter of the bitrate gives 130 instead of 295 kbit/s of scrolling); in plain
ABR x264 keeps the bitrate it started with. The VBV buffer (one second of the starting rate)
bounds a keyframe's size. The same mechanism refines a still screen: a few frames of the same
picture at a raised bitrate (PSNR of a 640x360 desktop 25.8 -> 28.7 dB).
"""

from __future__ import annotations

import zlib
from fractions import Fraction
from typing import Protocol

import av
import numpy as np
from av.video.frame import PictureType
from numpy.typing import NDArray

from openfrp.media.wire import CODEC_H264, CODEC_JPEG, CODEC_RGB_ZLIB, FLAG_KEY, pack_frame


class Encoder(Protocol):
    codec: int
    width: int
    height: int

    def encode(self, pixels: NDArray[np.uint8], key: bool) -> tuple[bytes, bool]:
        """The payload for one picture and whether it is a keyframe."""
        ...

    def set_bitrate(self, bits_per_second: int) -> None: ...


class H264Encoder:
    codec = CODEC_H264

    def __init__(
        self, width: int, height: int, bitrate: int, fps: int = 30, extra: str = ""
    ) -> None:
        self.width, self.height = width, height
        context = av.CodecContext.create("libx264", "w")
        assert isinstance(context, av.VideoCodecContext)
        context.width, context.height = width, height
        context.pix_fmt = "yuv420p"
        # Rate control counts time in frames: one tick per encoded picture.
        context.time_base = Fraction(1, fps)
        context.framerate = Fraction(fps, 1)
        context.bit_rate = bitrate
        context.options = {
            "preset": "ultrafast",
            "tune": "zerolatency",
            "profile": "baseline",
            "maxrate": str(bitrate),
            "bufsize": str(bitrate),
            # The colours say BT.601 (what the RGB->YUV conversion uses), or browsers assume BT.709.
            # qpmax: a quality floor, so text stays legible even when the bitrate cannot hold it.
            # me=umh:merange=64 finds a scrolled page (ultrafast's diamond search does not):
            # a scrolling xterm at 720p, 30 fps: 1.2 instead of 5.8 Mbit/s, PSNR 40 instead of
            # 32 dB, for about 2 ms more CPU per frame on motion.
            "x264-params": "keyint=infinite:scenecut=0:bframes=0:repeat-headers=1:annexb=1:"
            "qpmax=36:me=umh:merange=64:"
            "colorprim=smpte170m:transfer=smpte170m:colormatrix=smpte170m"
            + (f":{extra}" if extra else ""),
        }
        context.open()
        self._context = context
        self._pts = 0

    def set_bitrate(self, bits_per_second: int) -> None:
        self._context.bit_rate = bits_per_second

    def encode(self, pixels: NDArray[np.uint8], key: bool) -> tuple[bytes, bool]:
        frame = av.VideoFrame.from_numpy_buffer(pixels, format="bgra")  # no copy: 3 ms less
        frame.pts = self._pts
        self._pts += 1
        if key:
            frame.pict_type = PictureType.I
        packets = self._context.encode(frame)
        return b"".join(bytes(p) for p in packets), any(p.is_keyframe for p in packets)


class JpegEncoder:
    """The fallback for terminals without an H.264 decoder: every frame stands alone."""

    codec = CODEC_JPEG

    def __init__(self, width: int, height: int, quality: int = 6) -> None:
        self.width, self.height = width, height
        context = av.CodecContext.create("mjpeg", "w")
        assert isinstance(context, av.VideoCodecContext)
        context.width, context.height = width, height
        context.pix_fmt = "yuvj420p"
        context.time_base = Fraction(1, 30)
        context.options = {"qmin": str(quality), "qmax": str(quality)}
        context.open()
        self._context = context

    def set_bitrate(self, bits_per_second: int) -> None:
        """JPEG has no rate control: the frame rate is what adapts."""

    def encode(self, pixels: NDArray[np.uint8], key: bool) -> tuple[bytes, bool]:
        frame = av.VideoFrame.from_numpy_buffer(pixels, format="bgra").reformat(format="yuvj420p")
        return b"".join(bytes(p) for p in self._context.encode(frame)), True


class RgbZlibEncoder:
    """Packed RGB, zlib level 1: for the smallest terminals and the synthetic display."""

    codec = CODEC_RGB_ZLIB

    def __init__(self, width: int, height: int) -> None:
        self.width, self.height = width, height

    def set_bitrate(self, bits_per_second: int) -> None:
        """No rate control: the frame rate is what adapts."""

    def encode(self, pixels: NDArray[np.uint8], key: bool) -> tuple[bytes, bool]:
        rgb = np.ascontiguousarray(pixels[:, :, 2::-1])
        return zlib.compress(rgb.data, 1), True


def make_encoder(
    codec: str, width: int, height: int, bitrate: int, fps: int, x264_params: str = ""
) -> Encoder:
    if codec == "h264":
        return H264Encoder(width, height, bitrate, fps, x264_params)
    if codec == "jpeg":
        return JpegEncoder(width, height)
    return RgbZlibEncoder(width, height)


def choose_codec(decoders: list[str] | None) -> str:
    """The best codec the terminal draws; a terminal that names none only knows rgb-zlib."""
    for name in decoders or []:
        if name in ("h264", "jpeg", "rgb-zlib"):
            return name
    return "rgb-zlib"


def rgb_zlib(number: int, pixels: NDArray[np.uint8]) -> bytes:
    """A whole wire frame of packed RGB: every frame is a keyframe."""
    height, width = pixels.shape[:2]
    payload, _ = RgbZlibEncoder(width, height).encode(pixels, True)
    return pack_frame(number, width, height, CODEC_RGB_ZLIB, FLAG_KEY, payload)
