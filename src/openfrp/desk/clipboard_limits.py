"""How large a clipboard text may be, worded once for the server and the Python terminal
(the browser's clipboard.js words it the same), and the line ends it crosses with.

A terminal asks before it sends: text over the session's `clipboard_limit` is refused where
it was pasted, as the server would refuse it, and text that would make a control message over
MAX_MESSAGE_BYTES is never sent, since the server cannot tell such a message from junk: it
ends the connection with 4024 (it did so for a 270 KB paste, with a reconnect and the paste
key lost).
"""

from __future__ import annotations

from typing import Any

from openfrp.protocol.messages import MAX_MESSAGE_BYTES, encode
from openfrp.sizes import size_text


def x_text(text: str) -> str:
    """`text` with the X clipboard's line ends: CRLF and a lone CR become LF (an X app pastes a
    CR as Enter). Here, not in desk.clipboard, so the terminal does not import Xlib for it."""
    return text.replace("\r\n", "\n").replace("\r", "\n")


def over_limit(text: str, limit: int) -> str | None:
    """Why `text` is too large for a session whose clipboard_limit is `limit` (UTF-8 bytes),
    else None."""
    if len(text.encode("utf-8", "replace")) > limit:
        return f"over the size limit of {size_text(limit)}"
    return None


def over_message_bound(message: dict[str, Any]) -> str | None:
    """Why `message` cannot travel as one control message, else None."""
    if len(encode(message)) > MAX_MESSAGE_BYTES:
        return f"over the message limit of {size_text(MAX_MESSAGE_BYTES)}"
    return None


def refusal(text: str, limit: int) -> str | None:
    """Why a terminal does not send `text` as the session's clipboard, else None."""
    return over_limit(text, limit) or over_message_bound({"type": "clipboard", "text": text})
