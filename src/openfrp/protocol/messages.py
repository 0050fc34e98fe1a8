"""Control messages: JSON objects with a `type`, checked field by field.

A peer's bytes are untrusted: decoding never raises anything but MessageError, whose text
names what was wrong, so the session can close with the right code and log why.
"""

from __future__ import annotations

import json
from typing import Any

from openfrp.sizes import size_text

MAX_MESSAGE_BYTES = 256 * 1024


class MessageError(ValueError):
    """The peer sent something that is not a valid message."""


_INT = (int,)
_STR = (str,)
_BOOL = (bool,)
_DICT = (dict,)
_LIST = (list,)
_NUM = (int, float)

# type -> {field: (allowed types, required)}
TERMINAL_MESSAGES: dict[str, dict[str, tuple[tuple[type, ...], bool]]] = {
    "hello": {
        "version": (_INT, True),
        "session_id": (_STR, True),
        "token": (_STR, True),
        "config": (_DICT, True),
        "config_digest": (_STR, True),
        "client": (_STR, False),
        "resume": (_BOOL, False),
        "last_seq": (_INT, False),
        "previous_connection_id": (_STR, False),
        "screen": (_DICT, False),  # {width, height, scale}: the window, in device pixels
        "decoders": (_LIST, False),  # codec names the terminal can draw, best first
        "monitor": (_INT, False),  # 1-3: this window shows a secondary monitor of the session
    },
    "ping": {"id": (_INT, True)},
    "pong": {"id": (_INT, True)},
    "ack": {"seq": (_INT, True)},
    "frame_ack": {"frame": (_INT, True)},
    "resize": {
        "width": (_INT, True),
        "height": (_INT, True),
        "scale": (_NUM, False),
        "monitor": (_INT, False),
    },
    "keyframe": {"reason": (_STR, False)},
    "input": {"kind": (_STR, True), "data": (_DICT, False)},
    "clipboard": {"text": (_STR, True)},
    # An upload: begin, chunks each sent once the server acknowledged the one before, end.
    "file_begin": {"id": (_STR, True), "name": (_STR, True), "size": (_INT, True)},
    "file_chunk": {"id": (_STR, True), "offset": (_INT, True), "data": (_STR, True)},
    "file_end": {"id": (_STR, True)},
    "file_ack": {"id": (_STR, True), "offset": (_INT, True)},  # a download's progress
    "file_status": {"id": (_STR, True), "state": (_STR, True), "reason": (_STR, False)},
    "display_ack": {"change_id": (_INT, True)},
    "events": {"items": (_LIST, True)},
    "close": {},
    "disconnect": {},
}

SERVER_MESSAGES: dict[str, dict[str, tuple[tuple[type, ...], bool]]] = {
    "welcome": {
        "session_id": (_STR, True),
        "connection_id": (_STR, True),
        "resume": (_BOOL, True),
        "state": (_STR, True),
        "last_seq": (_INT, True),
    },
    "started": {},
    "ping": {"id": (_INT, True)},
    "pong": {"id": (_INT, True)},
    "msg": {"seq": (_INT, True), "body": (_DICT, True)},
    "warning": {"code": (_INT, True), "seconds_left": (_INT, True)},
    "display_change": {"change_id": (_INT, True)},
    "screen": {"width": (_INT, True), "height": (_INT, True), "monitor": (_INT, False)},
    # the session's cursor shape as a PNG (base64), its hot spot at (xhot, yhot)
    "cursor": {
        "width": (_INT, True),
        "height": (_INT, True),
        "xhot": (_INT, True),
        "yhot": (_INT, True),
        "png": (_STR, True),
    },
    "close": {"code": (_INT, True), "reason": (_STR, False)},
    "clipboard": {"text": (_STR, True)},  # text an app in the session copied
    # clipboard text that did not cross (to_session or from_session), and why
    "clipboard_refused": {"direction": (_STR, True), "bytes": (_INT, True), "reason": (_STR, True)},
    # A download offered from inside the session, paced by the terminal's file_ack; the
    # server's file_ack and file_status answer an upload.
    "file_offer": {"id": (_STR, True), "name": (_STR, True), "size": (_INT, True)},
    "file_chunk": {"id": (_STR, True), "offset": (_INT, True), "data": (_STR, True)},
    "file_end": {"id": (_STR, True)},
    "file_ack": {"id": (_STR, True), "offset": (_INT, True)},
    "file_status": {
        "id": (_STR, True),
        "state": (_STR, True),
        "name": (_STR, False),
        "reason": (_STR, False),
    },
}


def encode(message: dict[str, Any]) -> str:
    return json.dumps(message, separators=(",", ":"))


def decode(
    data: str | bytes, schema: dict[str, dict[str, tuple[tuple[type, ...], bool]]]
) -> dict[str, Any]:
    """Parse and check one control message against `schema`."""
    if isinstance(data, bytes):
        raise MessageError("binary frame where a control message was expected")
    if len(data) > MAX_MESSAGE_BYTES:
        raise MessageError(
            f"message of {size_text(len(data))} exceeds {size_text(MAX_MESSAGE_BYTES)}"
        )
    try:
        message = json.loads(data)
    except (ValueError, RecursionError) as exc:
        raise MessageError(f"not JSON ({type(exc).__name__})") from None
    if not isinstance(message, dict):
        raise MessageError("message is not a JSON object")
    kind = message.get("type")
    if not isinstance(kind, str):
        raise MessageError("message has no string 'type'")
    fields = schema.get(kind)
    if fields is None:
        raise MessageError(f"unknown message type {kind[:40]!r}")
    for name, (types, required) in fields.items():
        if name not in message:
            if required:
                raise MessageError(f"{kind}: missing field '{name}'")
            continue
        value = message[name]
        if isinstance(value, bool) and bool not in types:
            raise MessageError(f"{kind}: field '{name}' has the wrong type")
        if not isinstance(value, types):
            raise MessageError(f"{kind}: field '{name}' has the wrong type")
    extra = set(message) - set(fields) - {"type"}
    if extra:
        raise MessageError(f"{kind}: unexpected field(s) {', '.join(sorted(extra))[:80]}")
    return message


def decode_from_terminal(data: str | bytes) -> dict[str, Any]:
    return decode(data, TERMINAL_MESSAGES)


def decode_from_server(data: str | bytes) -> dict[str, Any]:
    return decode(data, SERVER_MESSAGES)
