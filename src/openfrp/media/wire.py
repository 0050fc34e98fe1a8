"""The binary video frame on the wire (FRP7 WebSocket binary frames).

A 10-byte header, then the codec's payload. The frame number is what the terminal
acknowledges (`frame_ack`), which is how the server measures the path and keeps at most a
few frames in flight. Width and height are the coded picture's, so a terminal sees a screen
resize in the first frame of the new size (always a keyframe).
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

HEADER = struct.Struct("!IHHBB")  # frame number, width, height, codec, flags

CODEC_RGB_ZLIB = 1
CODEC_H264 = 2  # Annex B access units (SPS/PPS in every keyframe)
CODEC_VP8 = 3
CODEC_JPEG = 4
CODEC_PALETTE = 5  # changed tiles in indexed colour (media/palette.py), mixed with H.264
CODEC_TRACK = 6  # FRP8 only: the rectangles the track frame of this RTP timestamp brings
TRACK_TILES = "track-tiles"  # in a hello's decoders: palette tiles beside the FRP8 video track
CODEC_NAMES = {
    CODEC_RGB_ZLIB: "rgb-zlib",
    CODEC_H264: "h264",
    CODEC_VP8: "vp8",
    CODEC_JPEG: "jpeg",
    CODEC_PALETTE: "palette",
    CODEC_TRACK: "track",
}

FLAG_KEY = 1  # decodable on its own
FLAG_REFINE = 2  # the same picture again at high quality, sent once the screen is still
FLAG_TILES = 4  # H.264 whose payload starts with the rectangles to take (media/mixed.py)
FLAG_MORE = 8  # the picture's next frame follows (palette tiles, then the H.264 beside them):
# a terminal counts the picture, and the Python terminal builds it, once, at its last frame


@dataclass(frozen=True)
class FrameHeader:
    number: int
    width: int
    height: int
    codec: int
    flags: int

    @property
    def key(self) -> bool:
        return bool(self.flags & FLAG_KEY)


def pack_frame(
    number: int, width: int, height: int, codec: int, flags: int, payload: bytes
) -> bytes:
    return HEADER.pack(number & 0xFFFFFFFF, width, height, codec, flags) + payload


def parse_frame(data: bytes) -> tuple[FrameHeader, bytes] | None:
    """The header and payload of a binary video frame, or None when it is not one."""
    if len(data) < HEADER.size:
        return None
    header = FrameHeader(*HEADER.unpack_from(data))
    if header.codec not in CODEC_NAMES:
        return None
    return header, data[HEADER.size :]


def frame_number(data: bytes) -> int | None:
    parsed = parse_frame(data)
    return None if parsed is None else parsed[0].number
