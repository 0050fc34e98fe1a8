"""The row cache of palette frames (media/rows.py): rows the terminal drew lately go as ids,
both ends forget the same rows, and a terminal that lost a frame refuses ids until the
encoder starts the cache over."""

from __future__ import annotations

import zlib

import numpy as np
import pytest
from numpy.typing import NDArray

from openfrp.media import palette as palette_module
from openfrp.media import rows as rows_module
from openfrp.media.changes import changed_tiles
from openfrp.media.palette import (
    COUNT,
    HEAD,
    RECT,
    RESET,
    ROWS,
    decode_palette,
    encode_palette,
    rectangles,
)
from openfrp.media.rows import LITERAL, RUN, RowIndex, RowStore
from tests.test_stream_media import text_picture

Picture = NDArray[np.uint8]


def scrolled(picture: Picture, by: int, seed: int) -> Picture:
    """`picture` scrolled up by `by` rows, with new text below."""
    fresh = text_picture(picture.shape[1], picture.shape[0], seed)
    return np.concatenate([picture[by:], fresh[:by]])


def send(picture: Picture, index: RowIndex, store: RowStore, drawn: Picture) -> bytes:
    payload = encode_palette(picture, changed_tiles(None, picture), index)
    assert payload is not None
    decode_palette(payload, drawn, store)
    assert np.array_equal(drawn, picture[:, :, 2::-1])
    return payload


def test_rows_drawn_before_travel_as_ids_and_come_back_exactly() -> None:
    index, store = RowIndex(), RowStore()
    drawn = np.zeros((360, 640, 3), np.uint8)
    first = text_picture()
    payload = send(first, index, store, drawn)
    assert HEAD.unpack_from(payload)[0] & (ROWS | RESET) == ROWS | RESET
    second = scrolled(first, 42, seed=8)  # three lines of new text, the rest moved up
    cached = send(second, index, store, drawn)
    assert HEAD.unpack_from(cached)[0] & (ROWS | RESET) == ROWS
    whole = encode_palette(second, changed_tiles(None, second))
    assert whole is not None and len(cached) * 4 < len(whole), (len(cached), len(whole))
    assert len(send(first, index, store, drawn)) * 4 < len(whole)  # and scrolled back


def test_a_terminal_that_lost_a_frame_refuses_ids_until_the_cache_starts_over() -> None:
    index, store = RowIndex(), RowStore()
    drawn = np.zeros((360, 640, 3), np.uint8)
    first = text_picture()
    send(first, index, store, drawn)
    store.lose()  # a frame was skipped: what it drew is unknown here
    payload = encode_palette(first, changed_tiles(None, first), index)
    assert payload is not None
    with pytest.raises(ValueError, match="lost"):
        decode_palette(payload, drawn, store)
    index.fresh = True  # the keyframe the terminal asked for
    send(first, index, store, drawn)
    send(scrolled(first, 14, seed=9), index, store, drawn)


def test_both_ends_forget_the_same_rows(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(rows_module, "ROW_PIXELS", 640 * 500)  # under two screens of rows
    index, store = RowIndex(), RowStore()
    drawn = np.zeros((360, 640, 3), np.uint8)
    pictures = [text_picture(seed=seed) for seed in range(3)]
    whole = [len(encode_palette(p, changed_tiles(None, p)) or b"") for p in pictures]
    order = np.random.default_rng(1).integers(0, 3, 16)
    saved = [whole[k] - len(send(pictures[k], index, store, drawn)) for k in order]
    assert index.next_id == store.next_id > 1000  # hundreds of rows forgotten on both sides
    assert max(saved) > min(whole) // 2  # and rows still held were sent as ids
    assert index.fresh is False and store.synced


def test_a_payload_the_terminal_cannot_draw_is_refused() -> None:
    index = RowIndex()
    picture = text_picture()
    payload = encode_palette(picture, changed_tiles(None, picture), index)
    assert payload is not None and HEAD.unpack_from(payload)[0] & RESET
    _, top, count = HEAD.unpack_from(payload)
    at = HEAD.size + (top + 1) * 3 + count * RECT.size  # the run count, the size, the data
    (total,) = COUNT.unpack_from(payload, at)
    data = zlib.decompressobj().decompress(payload[at + 2 * COUNT.size :])
    first, rest = RUN.unpack_from(data), data[RUN.size :]

    def rebuilt(runs: int, body: bytes, size: int | None = None) -> bytes:
        sizes = COUNT.pack(len(body) if size is None else size)
        return payload[:at] + COUNT.pack(runs) + sizes + zlib.compress(body)

    def refused(broken: bytes, store: RowStore | None, reason: str) -> None:
        with pytest.raises(ValueError, match=reason):
            decode_palette(broken, np.zeros((360, 640, 3), np.uint8), store)

    height = RECT.unpack_from(payload, HEAD.size + (top + 1) * 3)[3]
    assert first[1] <= height  # a run longer than its rectangle cannot fit
    refused(rebuilt(total, RUN.pack(first[0], height + 1) + rest), RowStore(), "do not fit")
    refused(rebuilt(total - 1, data[: -RUN.size]), RowStore(), "end before")
    refused(payload, None, "row cache")
    refused(payload[:20], RowStore(), "cut short")
    refused(rebuilt(total, data[: RUN.size * total]), RowStore(), "cut short")
    refused(rebuilt(total, data, len(data) + 1), RowStore(), "inflates to")
    refused(payload[: at + 2 * COUNT.size] + b"garbage", RowStore(), "do not inflate")


def test_a_line_is_the_same_row_in_a_rectangle_of_any_width() -> None:
    """A terminal's changed tiles end where its longest line does: the rows of a line sent in
    a narrow rectangle are ids in a wide one, extended with their background, and back."""
    index, store = RowIndex(), RowStore()
    text = np.full((360, 640, 4), 255, np.uint8)
    text[:, :300] = text_picture(300, 360, seed=4)
    drawn = np.zeros((360, 640, 3), np.uint8)
    narrow = np.zeros((6, 10), np.bool_)
    narrow[:, :5] = True  # the first 320 columns
    first = encode_palette(text, narrow, index)
    assert first is not None
    decode_palette(first, drawn, store)
    wide = np.concatenate([text[28:], text[:28]])  # the same lines, two moved to the bottom
    payload = send(wide, index, store, drawn)
    alone = encode_palette(wide, changed_tiles(None, wide))
    assert alone is not None and len(payload) * 4 < len(alone), (len(payload), len(alone))
    again = np.concatenate([wide[14:], wide[:14]])
    cut = encode_palette(again, narrow, index)
    assert cut is not None
    decode_palette(cut, drawn, store)
    assert np.array_equal(drawn, again[:, :, 2::-1])


def test_ids_start_over_before_they_outgrow_32_bits() -> None:
    index, store = RowIndex(), RowStore()
    drawn = np.zeros((360, 640, 3), np.uint8)
    picture = text_picture()
    send(picture, index, store, drawn)
    index.next_id = store.next_id = rows_module.ID_LIMIT + 1  # as after days of scrolling
    payload = send(scrolled(picture, 14, seed=6), index, store, drawn)
    assert HEAD.unpack_from(payload)[0] & RESET and index.next_id < 1000


def listing(seed: int) -> Picture:
    """Lines of text whose columns 64-127 repeat every line (the permissions and owner of a
    file listing), so a scroll by one line leaves those tiles as they were."""
    picture = text_picture(seed=seed)
    prefix = text_picture(64, 14, seed=99)
    for y in range(0, picture.shape[0], 14):
        rows = min(14, picture.shape[0] - y)
        picture[y : y + rows, 64:128] = prefix[:rows]
    return picture


def second_frame(first: Picture, second: Picture, warm: bool = True) -> tuple[bytes, Picture]:
    """The payload of `second` after `first` (through the row cache when `warm`), and the
    picture drawn."""
    index, store = RowIndex(), RowStore()
    drawn = np.ascontiguousarray(first[:, :, 2::-1])
    if warm:
        send(first, index, store, drawn)
    payload = encode_palette(second, changed_tiles(first, second), index)
    assert payload is not None
    decode_palette(payload, drawn, store)
    assert np.array_equal(drawn, second[:, :, 2::-1])
    return payload, drawn


def rects_of(payload: bytes) -> list[tuple[int, ...]]:
    _, top, count = HEAD.unpack_from(payload)
    at = HEAD.size + (top + 1) * 3
    return [RECT.unpack_from(payload, at + k * RECT.size) for k in range(count)]


def test_a_column_left_put_by_a_scroll_does_not_split_its_lines(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    first = listing(seed=1)
    second = np.concatenate([first[14:], listing(seed=2)[:14]])
    mask = changed_tiles(first, second)
    assert not mask[:4, 1].any() and mask[:4, 0].all() and mask[:4, 2].all()
    payload, _ = second_frame(first, second)
    assert all(x == 0 for x, *_ in rects_of(payload))  # whole lines, stacked
    assert len(rects_of(payload)) < int(mask.sum())
    monkeypatch.setattr(palette_module, "spans", lambda mask, w, h, _: rectangles(mask, w, h))
    split, _ = second_frame(first, second)
    assert any(x == 128 for x, *_ in rects_of(split))
    assert len(payload) < len(split) * 0.8, (len(payload), len(split))


def test_a_picture_left_put_between_changed_lines_stays_out_of_the_palette() -> None:
    photo = np.random.default_rng(5).integers(0, 256, (360, 64, 4), np.uint8)
    first, second = listing(seed=1), np.concatenate([listing(seed=1)[14:], listing(seed=2)[:14]])
    first[:, 64:128] = second[:, 64:128] = photo
    payload, _ = second_frame(first, second, warm=False)
    assert not any(x < 128 < x + w for x, _, w, _ in rects_of(payload))


def runs_of(payloads: list[bytes]) -> list[tuple[int, int]]:
    """The runs of the last of a session's palette frames (their data is one stream)."""
    inflater = zlib.decompressobj()
    for payload in payloads:
        flags, top, count = HEAD.unpack_from(payload)
        inflater = zlib.decompressobj() if flags & RESET else inflater
        at = HEAD.size + (top + 1) * 3 + count * RECT.size
        (total,) = COUNT.unpack_from(payload, at)
        data = inflater.decompress(payload[at + 2 * COUNT.size :])
    return [RUN.unpack_from(data, k * RUN.size) for k in range(total)]


def test_a_page_drawn_once_comes_back_as_one_run() -> None:
    """The blank rows between new lines are drawn again with them, so a page keeps its rows'
    ids in order and comes back as one run, not three a line."""
    index, store = RowIndex(), RowStore()
    drawn = np.zeros((360, 640, 3), np.uint8)
    page = text_picture(seed=4)
    sent = [send(picture, index, store, drawn) for picture in (page, text_picture(seed=5), page)]
    assert len(runs_of(sent)) <= 2, runs_of(sent)
    assert all(start != LITERAL for start, _ in runs_of(sent))


def ragged(seed: int) -> Picture:
    """Lines of text on white of random lengths, with no panel: a terminal's listing."""
    picture = text_picture(seed=seed)
    picture[:, 480:] = 255
    return picture


def test_lines_that_end_at_different_tiles_scroll_as_one_rectangle(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    first = ragged(seed=1)
    second = np.concatenate([first[14:], ragged(seed=2)[:14]])
    payload, _ = second_frame(first, second)
    assert len(rects_of(payload)) == 1
    monkeypatch.setattr(palette_module, "STACK_SLACK", 1.0)
    split, _ = second_frame(first, second)
    assert len(rects_of(split)) > 2
    assert len(payload) < len(split), (len(payload), len(split))


def test_a_stack_does_not_reach_over_a_picture_beside_short_lines() -> None:
    first, second = ragged(seed=1), np.concatenate([ragged(seed=1)[14:], ragged(seed=2)[:14]])
    first[:, 128:] = second[:, 128:] = 255  # short lines: the rest of each row stays white
    first[:180, 128:] = second[:180, 128:] = ragged(seed=3)[:180, 128:]  # long ones above
    second[:180, 128:] = np.concatenate([first[14:180, 128:], ragged(seed=4)[:14, 128:]])
    photo = np.random.default_rng(5).integers(0, 256, (128, 128, 4), np.uint8)
    first[192:320, 256:384] = second[192:320, 256:384] = photo
    payload, _ = second_frame(first, second, warm=False)
    rects = rects_of(payload)
    assert not any(x < 384 and x + w > 256 and y < 320 and y + h > 192 for x, y, w, h in rects)
    assert len(rects) < int(changed_tiles(first, second).sum())


def test_a_row_drawn_into_a_wider_line_is_extended_and_an_empty_one_refused() -> None:
    store = RowStore()
    colours = np.array([[1, 2, 3], [40, 50, 60]], np.uint8)
    store.remember(np.array([0, 1, 1, 0], np.uint8), colours)
    store.remember(np.zeros(0, np.uint8), colours)  # a rectangle of no width drew it
    line = np.zeros((6, 3), np.uint8)
    store.draw(0, line)
    assert line.tolist() == [[1, 2, 3], [40, 50, 60], [40, 50, 60], *[[1, 2, 3]] * 3]
    store.draw(0, line[:2])
    assert line[:2].tolist() == [[1, 2, 3], [40, 50, 60]]
    with pytest.raises(ValueError, match="row 1, which is empty"):
        store.draw(1, line)
    store.draw(1, line[:0])  # nothing to draw, nothing to extend
