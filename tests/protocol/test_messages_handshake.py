"""Control-message decoding and the hello/token checks behind 4002."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import sys
from typing import Any

import pytest

from openfrp import PROTOCOL_VERSION
from openfrp.protocol import messages
from openfrp.protocol.handshake import (
    TokenError,
    canonical,
    check_hello,
    digest,
    sign_token,
    verify_token,
)
from openfrp.protocol.messages import MessageError
from tests.protocol.harness import CONFIG, SECRET, SESSION_ID, USER, hello, issued, token

# -- messages ----------------------------------------------------------------------------------


def test_encode_decode_round_trip() -> None:
    message = {"type": "input", "kind": "key", "data": {"key": "a"}}
    text = messages.encode(message)
    assert " " not in text
    assert messages.decode_from_terminal(text) == message


def test_every_server_message_type_decodes() -> None:
    samples: list[dict[str, Any]] = [
        {
            "type": "welcome",
            "session_id": "s",
            "connection_id": "c",
            "resume": False,
            "state": "active",
            "last_seq": 0,
        },
        {"type": "started"},
        {"type": "ping", "id": 1},
        {"type": "pong", "id": 1},
        {"type": "msg", "seq": 1, "body": {}},
        {"type": "warning", "code": 4008, "seconds_left": 60},
        {"type": "display_change", "change_id": 3},
        {"type": "screen", "width": 1280, "height": 720},
        {"type": "screen", "width": 1280, "height": 720, "monitor": 1},
        {"type": "cursor", "width": 16, "height": 16, "xhot": 7, "yhot": 7, "png": "iVBO"},
        {"type": "close", "code": 4000},
        {"type": "close", "code": 4000, "reason": "USER_CLOSED"},
        {"type": "clipboard", "text": "copied"},
        {"type": "clipboard_refused", "direction": "from_session", "bytes": 9, "reason": "off"},
        {"type": "file_offer", "id": "d1", "name": "report.pdf", "size": 10},
        {"type": "file_chunk", "id": "d1", "offset": 0, "data": "aGVsbG8="},
        {"type": "file_end", "id": "d1"},
        {"type": "file_ack", "id": "u1", "offset": 49152},
        {"type": "file_status", "id": "u1", "state": "saved", "name": "a (1).txt"},
    ]
    for sample in samples:
        assert messages.decode_from_server(messages.encode(sample)) == sample
    assert set(messages.SERVER_MESSAGES) == {s["type"] for s in samples}


@pytest.mark.parametrize(
    ("data", "fragment"),
    [
        (b'{"type":"ping","id":1}', "binary frame"),
        ("not json", "not JSON"),
        ("", "not JSON"),
        ("[" * 100_000, "not JSON"),
        ("[1, 2]", "not a JSON object"),
        ('"hello"', "not a JSON object"),
        ("{}", "no string 'type'"),
        ('{"type": 7}', "no string 'type'"),
        ('{"type": "nope"}', "unknown message type"),
        ('{"type": "ping"}', "missing field 'id'"),
        ('{"type": "ping", "id": "1"}', "wrong type"),
        ('{"type": "ping", "id": true}', "wrong type"),
        ('{"type": "ping", "id": 1.0}', "wrong type"),
        ('{"type": "ping", "id": 1, "extra": 2}', "unexpected field(s) extra"),
        ('{"type": "ack", "seq": null}', "wrong type"),
        ('{"type": "input", "kind": "key", "data": []}', "wrong type"),
        ('{"type": "events", "items": {}}', "wrong type"),
        ('{"type": "welcome"}', "unknown message type"),  # server-only type
    ],
)
def test_decode_rejects_with_a_reason(data: str | bytes, fragment: str) -> None:
    with pytest.raises(MessageError) as info:
        messages.decode_from_terminal(data)
    assert fragment in str(info.value)


def test_decode_rejects_oversized_messages() -> None:
    body = "x" * messages.MAX_MESSAGE_BYTES
    with pytest.raises(MessageError, match="exceeds"):
        messages.decode_from_terminal(json.dumps({"type": "clipboard", "text": body}))
    # exactly at the limit is accepted
    fill = messages.MAX_MESSAGE_BYTES - len('{"type":"clipboard","text":""}')
    exact = json.dumps({"type": "clipboard", "text": "x" * fill}, separators=(",", ":"))
    assert len(exact) == messages.MAX_MESSAGE_BYTES
    assert messages.decode_from_terminal(exact)["type"] == "clipboard"


def test_bool_is_accepted_only_where_bool_is_expected() -> None:
    ok = hello(resume=True, last_seq=3, previous_connection_id="c1")
    assert messages.decode_from_terminal(messages.encode(ok))["resume"] is True
    with pytest.raises(MessageError, match="resume"):
        messages.decode_from_terminal(messages.encode(hello(resume=1)))
    with pytest.raises(MessageError, match="last_seq"):
        messages.decode_from_terminal(messages.encode(hello(last_seq=False)))


def test_decode_from_server_rejects_terminal_only_types() -> None:
    with pytest.raises(MessageError, match="unknown message type"):
        messages.decode_from_server('{"type": "hello"}')
    with pytest.raises(MessageError, match="missing field 'code'"):
        messages.decode_from_server('{"type": "close"}')


# -- tokens ------------------------------------------------------------------------------------


def test_token_round_trip() -> None:
    claims = {"session_id": SESSION_ID, "user": USER, "n": 1}
    assert verify_token(SECRET, sign_token(SECRET, claims)) == claims


def test_token_with_another_secret_is_rejected() -> None:
    with pytest.raises(TokenError, match="signature"):
        verify_token(SECRET, token(secret=b"another secret"))


def test_token_with_altered_claims_is_rejected() -> None:
    header, _, signature = token().split(".")
    forged = sign_token(b"x", {"session_id": SESSION_ID, "user": "mallory"}).split(".")[1]
    with pytest.raises(TokenError, match="signature"):
        verify_token(SECRET, f"{header}.{forged}.{signature}")
    with pytest.raises(TokenError):
        verify_token(SECRET, f"{header}.{forged}.{signature[:-2]}")


def test_junk_characters_in_a_signature_are_rejected() -> None:
    """base64 decoders skip characters outside the alphabet: '!*' must not slip through."""
    header, claims, signature = token().split(".")
    for junk in ("!*", "=", " ", "+/", "\n"):
        mangled = f"{header}.{claims}.{signature[:8]}{junk}{signature[8:]}"
        with pytest.raises(TokenError, match="base64url"):
            verify_token(SECRET, mangled)


def test_token_expiry_is_checked_against_the_callers_clock() -> None:
    signed = sign_token(SECRET, {"session_id": SESSION_ID, "user": USER, "exp": 1000})
    assert verify_token(SECRET, signed, now=999.5)["exp"] == 1000
    assert verify_token(SECRET, signed)["user"] == USER  # no clock given: no expiry check
    with pytest.raises(TokenError, match="expired"):
        verify_token(SECRET, signed, now=1000)


def test_a_revoked_generation_fails_the_hello() -> None:
    old = token(gen=0)
    assert check_hello(hello(token=old), issued(), SECRET, PROTOCOL_VERSION, 0) is None
    assert check_hello(hello(token=old), issued(), SECRET, PROTOCOL_VERSION, 1) == (
        "token",
        "token has been revoked",
    )
    fresh = token(gen=1)
    assert check_hello(hello(token=fresh), issued(), SECRET, PROTOCOL_VERSION, 1) is None


def test_an_expired_token_fails_the_hello_when_a_clock_is_given() -> None:
    signed = token(exp=1000)
    assert check_hello(hello(token=signed), issued(), SECRET, PROTOCOL_VERSION, 0, 999.5) is None
    assert check_hello(hello(token=signed), issued(), SECRET, PROTOCOL_VERSION, 0, 1000) == (
        "token",
        "token has expired",
    )


@pytest.mark.parametrize("bad", ["", "abc", ".", "abc.", ".abc", "!!!.???", "a.b.c", "a.b"])
def test_malformed_tokens_raise_token_error(bad: str) -> None:
    with pytest.raises(TokenError):
        verify_token(SECRET, bad)


def test_token_claims_must_be_an_object() -> None:
    header, _, _ = token().split(".")
    body = base64.urlsafe_b64encode(b"[1,2]").rstrip(b"=").decode()
    signing = hmac.new(SECRET, b"openfrp-token", hashlib.sha256).digest()
    mac = hmac.new(signing, f"{header}.{body}".encode(), hashlib.sha256).digest()
    signature = base64.urlsafe_b64encode(mac).rstrip(b"=").decode()
    with pytest.raises(TokenError):
        verify_token(SECRET, f"{header}.{body}.{signature}")


def test_digest_is_canonical() -> None:
    a = {"b": 1, "a": [1, 2], "c": {"y": 2, "x": 1}}
    b = {"c": {"x": 1, "y": 2}, "a": [1, 2], "b": 1}
    assert canonical(a) == canonical(b)
    assert digest(a) == digest(b)
    assert digest(a) != digest({**a, "b": 2})
    assert len(digest(a)) == 64


def test_digest_is_over_json_values_so_a_browser_round_trip_keeps_it() -> None:
    """JSON.parse/JSON.stringify turns 30.0 into 30: the digest must not change."""
    issued_config = {"terminal": {"connect_timeout": 30.0, "keepalive_timeout": 1.2}, "n": [2.0]}
    from_browser = {"terminal": {"connect_timeout": 30, "keepalive_timeout": 1.2}, "n": [2]}
    assert digest(issued_config) == digest(from_browser)
    assert digest(issued_config) != digest({**from_browser, "n": [2.5]})


# -- check_hello -------------------------------------------------------------------------------


def _check(**overrides: Any) -> tuple[str, str] | None:
    return check_hello(hello(**overrides), issued(), SECRET, PROTOCOL_VERSION)


def test_correct_hello_passes() -> None:
    assert _check() is None
    assert _check(resume=True, last_seq=4, previous_connection_id="c9") is None


def test_each_mismatch_names_its_field() -> None:
    tampered = {**CONFIG, "width": 3840}
    assert _check(version=PROTOCOL_VERSION + 1)[0] == "version"  # type: ignore[index]
    assert _check(session_id="sess-2")[0] == "session_id"  # type: ignore[index]
    assert _check(token=token(secret=b"wrong"))[0] == "token"  # type: ignore[index]
    assert _check(token=token(user="bob@example.com"))[0] == "token"  # type: ignore[index]
    assert _check(token=token(session_id="sess-2"))[0] == "token"  # type: ignore[index]
    assert _check(token="garbage")[0] == "token"  # type: ignore[index]
    assert _check(config=tampered)[0] == "config"  # type: ignore[index]
    assert _check(config=tampered, config_digest=digest(tampered)) == (
        "config_digest",
        "configuration differs from the one the server issued",
    )


def test_a_config_too_deep_to_serialise_is_a_mismatch_not_a_crash() -> None:
    deep: Any = 0
    for _ in range(sys.getrecursionlimit()):
        deep = [deep]
    assert _check(config={**CONFIG, "deep": deep}) == (
        "config",
        "configuration is nested too deeply",
    )


def test_checks_run_in_order_version_first() -> None:
    result = _check(version=0, session_id="other", token="garbage")
    assert result is not None
    assert result[0] == "version"
    assert "protocol 0" in result[1]
