"""A VP8 frame that shows the last frame again, for a few dozen bytes.

A still screen must still send a frame now and then: a WebRTC receiver that goes three
seconds without one asks for a keyframe. Encoding the same picture again is not cheap in
libvpx (its rate control spends the whole gap's bits refining it: 5-20 KB a second at 720p),
so the repeat is written here instead: an inter frame in which every macroblock is skipped
with a zero motion vector from the last frame, no loop filter, and no reference or
probability updated (RFC 6386). The decoder shows the last frame unchanged and its state is
as before, so the encoder's next frame decodes as if the repeat had never been sent.
"""

from __future__ import annotations

from functools import cache

# RFC 6386 13.4: the probability of each coefficient probability update flag, per block type,
# band and context; each row's trailing values are 255.
_COEF_UPDATE_ROWS = """
; ; | 176 246 ; 223 241 252 ; 249 253 253 | 255 244 252 ; 234 254 254 ; 253 |
255 246 254 ; 239 253 254 ; 254 255 254 | 255 248 254 ; 251 255 254 ; |
255 253 254 ; 251 254 254 ; 254 255 254 | 255 254 253 255 254 ; 250 255 254 255 254 ; 254 | ; ; ||
217 ; 225 252 241 253 255 255 254 ; 234 250 241 250 253 255 253 254 | 255 254 ; 223 254 254 ;
238 253 254 254 | 255 248 254 ; 249 254 ; | 255 253 ; 247 254 ; | 255 253 254 ; 252 ; |
255 254 254 ; 253 ; | 255 254 253 ; 250 ; 254 | ; ; ||
186 251 250 ; 234 251 244 254 ; 251 251 243 253 254 255 254 | 255 253 254 ; 236 253 254 ;
251 253 253 254 254 | 255 254 254 ; 254 254 254 ; | 255 254 ; 254 254 ; 254 | ; 254 ; | ; ; |
; ; | ; ; ||
248 ; 250 254 252 254 ; 248 254 249 253 | 255 253 253 ; 246 253 253 ; 252 254 251 254 254 |
255 254 252 ; 248 254 253 ; 253 255 254 254 | 255 251 254 ; 245 251 254 ; 253 253 254 |
255 251 253 ; 252 253 254 ; 255 254 | 255 252 ; 249 255 254 ; 255 255 254 | 255 255 253 ; 250 ; |
; 254 ;
"""
# RFC 6386 17.2: the probability of each motion vector probability update flag (row, column).
_MV_UPDATE = (
    (237, 246, 253, 253, 254, 254, 254, 254, 254, 254, 254, 254, 254, 254, 250, 250, 252, 254, 254),
    (231, 243, 245, 253, 254, 254, 254, 254, 254, 254, 254, 254, 254, 254, 251, 251, 254, 254, 254),
)
# RFC 6386 16.3, vp8_mode_contexts[n][0]: the probability that an inter macroblock is ZEROMV
# when n counts its zero-motion inter neighbours (2 each above and left, 1 above-left).
_ZEROMV_PROB = {0: 7, 2: 135, 5: 234}


def _coef_update_probs() -> list[int]:
    rows = _COEF_UPDATE_ROWS.replace("||", "|").replace("|", ";").split(";")
    probs: list[int] = []
    for row in rows:
        values = [int(v) for v in row.split()]
        probs += values + [255] * (11 - len(values))
    assert len(probs) == 4 * 8 * 3 * 11
    return probs


class _BoolEncoder:
    """RFC 6386 7.3's boolean entropy encoder."""

    def __init__(self) -> None:
        self.out = bytearray()
        self.range = 255
        self.bottom = 0
        self.bit_count = 24

    def _carry(self) -> None:
        i = len(self.out) - 1
        while self.out[i] == 255:
            self.out[i] = 0
            i -= 1
        self.out[i] += 1

    def bool(self, prob: int, bit: int) -> None:
        split = 1 + (((self.range - 1) * prob) >> 8)
        if bit:
            self.bottom += split
            self.range -= split
        else:
            self.range = split
        while self.range < 128:
            self.range <<= 1
            if self.bottom & (1 << 31):
                self._carry()
            self.bottom = (self.bottom << 1) & 0xFFFFFFFF
            self.bit_count -= 1
            if not self.bit_count:
                self.out.append(self.bottom >> 24)
                self.bottom &= (1 << 24) - 1
                self.bit_count = 8

    def literal(self, value: int, bits: int) -> None:
        for shift in range(bits - 1, -1, -1):
            self.bool(128, (value >> shift) & 1)

    def flush(self) -> bytes:
        c, v = self.bit_count, self.bottom
        if v & (1 << (32 - c)):
            self._carry()
        v = (v << (c & 7)) & 0xFFFFFFFF
        v = (v << (8 * (c >> 3))) & 0xFFFFFFFF
        for _ in range(4):
            self.out.append(v >> 24)
            v = (v << 8) & 0xFFFFFFFF
        return bytes(self.out)


@cache
def repeat_frame(width: int, height: int) -> bytes:
    """The VP8 inter frame, for a `width` x `height` stream, that repeats the last frame."""
    header = _BoolEncoder()
    # segmentation off, normal filter at level 0, sharpness 0, no filter deltas, one token
    # partition, quantizer index 0 without deltas (no coefficient is coded), then: no golden
    # or altref refresh nor copy, no sign bias, probabilities kept, last frame kept.
    header.literal(0, 1 + 1 + 6 + 3 + 1 + 2 + 7 + 5 + 1 + 1 + 2 + 2 + 1 + 1 + 1 + 1)
    for prob in _coef_update_probs():
        header.bool(prob, 0)
    header.literal(1, 1)  # mb_no_coeff_skip
    header.literal(1, 8)  # prob_skip_false: skipped is the likely case
    header.literal(1, 8)  # prob_intra: inter is the likely case
    header.literal(255, 8)  # prob_last: the last frame is the likely reference
    header.literal(128, 8)  # prob_gf
    header.literal(0, 2)  # no intra mode probability updates
    for probs in _MV_UPDATE:
        for prob in probs:
            header.bool(prob, 0)
    cols, rows = (width + 15) // 16, (height + 15) // 16
    for row in range(rows):
        for col in range(cols):
            header.bool(1, 1)  # skipped: no coefficients
            header.bool(1, 1)  # inter
            header.bool(255, 0)  # from the last frame
            zero_neighbours = 2 * (row > 0) + 2 * (col > 0) + (row > 0 and col > 0)
            header.bool(_ZEROMV_PROB[zero_neighbours], 0)  # ZEROMV
    first = header.flush()
    tokens = _BoolEncoder().flush()
    tag = 1 | (0 << 1) | (1 << 4) | (len(first) << 5)  # inter frame, version 0, shown
    return tag.to_bytes(3, "little") + first + tokens
