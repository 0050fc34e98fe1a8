"""A built-in display: a moving gradient, so a session always has real frames to stream.

Frames are zlib-compressed RGB behind a small header; the terminal acknowledges each frame
number, which is how the server keeps at most a couple of frames in flight and drops the
rest instead of letting video fill the send path.
"""

from __future__ import annotations

import struct
import zlib

HEADER = struct.Struct("!IHHB")
FORMAT_RGB_ZLIB = 1


class SyntheticDisplay:
    def __init__(self, width: int = 64, height: int = 48) -> None:
        self.width = width
        self.height = height
        self.frame = 0

    def capture(self) -> bytes:
        """Raw RGB pixels of the next frame."""
        self.frame += 1
        shift = self.frame % 256
        row = bytes(
            value for x in range(self.width) for value in ((x * 4 + shift) % 256, shift, 128)
        )
        return row * self.height


def encode_frame(number: int, width: int, height: int, rgb: bytes) -> bytes:
    return HEADER.pack(number, width, height, FORMAT_RGB_ZLIB) + zlib.compress(rgb, 1)


def frame_number(data: bytes) -> int | None:
    """The frame number of a binary video frame, or None when it is not one."""
    if len(data) < HEADER.size:
        return None
    return int(HEADER.unpack_from(data)[0])
