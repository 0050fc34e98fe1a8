"""The clipboard's size rules both ends share: what a terminal lets through is what the server
reads and takes, and what it refuses is said in the server's words."""

from __future__ import annotations

from openfrp.desk.clipboard_limits import over_limit, over_message_bound, refusal
from openfrp.protocol.messages import MAX_MESSAGE_BYTES, decode_from_terminal, encode
from openfrp.sizes import size_text

LIMIT = 64 * 1024
OVER_LIMIT = f"over the size limit of {size_text(LIMIT)}"
OVER_MESSAGE = f"over the message limit of {size_text(MAX_MESSAGE_BYTES)}"


def test_the_limit_counts_utf8_bytes() -> None:
    assert over_limit("a" * LIMIT, LIMIT) is None
    assert over_limit("a" * (LIMIT + 1), LIMIT) == OVER_LIMIT
    assert over_limit("é" * (LIMIT // 2 + 1), LIMIT) == OVER_LIMIT


def test_text_a_message_cannot_carry_is_refused_before_the_server_reads_junk() -> None:
    big = 4 * 1024 * 1024
    for text in ("x" * 300_000, "é" * 50_000, "漢" * 50_000):
        assert refusal(text, big) == OVER_MESSAGE
    fits = "x" * (MAX_MESSAGE_BYTES - len(encode({"type": "clipboard", "text": ""})))
    assert refusal(fits, big) is None
    assert decode_from_terminal(encode({"type": "clipboard", "text": fits}))["text"] == fits
    assert refusal(fits + "x", big) == OVER_MESSAGE
    assert over_message_bound({"type": "clipboard", "text": fits + "x"}) == OVER_MESSAGE


def test_the_limit_is_said_first() -> None:
    assert refusal("x" * 300_000, LIMIT) == OVER_LIMIT
    assert refusal("x" * LIMIT, LIMIT) is None
