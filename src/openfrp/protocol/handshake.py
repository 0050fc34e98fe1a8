"""The session configuration and token the server issues and checks in `hello`.

The configuration travels to the terminal at launch and comes back in `hello`; its digest and
the token's HMAC let the server tell a wrong, stale or tampered terminal apart (4002).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from dataclasses import dataclass
from typing import Any


def _json_value(value: Any) -> Any:
    """JSON has one number type: 30.0 and 30 are the same value, and a browser sends 30 back
    for the 30.0 it was given. Integral floats become ints so both digest alike."""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, dict):
        return {k: _json_value(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_json_value(v) for v in value]
    return value


def canonical(data: dict[str, Any]) -> bytes:
    return json.dumps(_json_value(data), sort_keys=True, separators=(",", ":")).encode()


def digest(config: dict[str, Any]) -> str:
    return hashlib.sha256(canonical(config)).hexdigest()


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def sign_token(secret: bytes, claims: dict[str, Any]) -> str:
    body = _b64(canonical(claims))
    mac = hmac.new(secret, body.encode(), hashlib.sha256).digest()
    return f"{body}.{_b64(mac)}"


class TokenError(ValueError):
    """The token is malformed or its signature does not match."""


def verify_token(secret: bytes, token: str) -> dict[str, Any]:
    body, sep, mac = token.partition(".")
    if not sep or not body or not mac:
        raise TokenError("token is not of the form BODY.SIGNATURE")
    expected = hmac.new(secret, body.encode(), hashlib.sha256).digest()
    try:
        given = _unb64(mac)
        claims = json.loads(_unb64(body))
    except ValueError:
        raise TokenError("token is not valid base64/JSON") from None
    if not hmac.compare_digest(expected, given):
        raise TokenError("token signature does not match")
    if not isinstance(claims, dict):
        raise TokenError("token claims are not an object")
    return claims


@dataclass(frozen=True)
class Issued:
    """What the server keeps of a launched session to check each `hello` against."""

    session_id: str
    user: str
    config: dict[str, Any]
    config_digest: str


def check_hello(
    hello: dict[str, Any], issued: Issued, secret: bytes, version: int
) -> tuple[str, str] | None:
    """Return (field, problem) for the first mismatch, or None when the hello fits."""
    if hello["version"] != version:
        return "version", f"terminal speaks protocol {hello['version']}, server {version}"
    if hello["session_id"] != issued.session_id:
        return "session_id", "hello names another session"
    try:
        claims = verify_token(secret, hello["token"])
    except TokenError as exc:
        return "token", str(exc)
    if claims.get("session_id") != issued.session_id or claims.get("user") != issued.user:
        return "token", "token was issued for another session or user"
    if digest(hello["config"]) != hello["config_digest"]:
        return "config", "configuration does not match its own digest (corrupted)"
    if hello["config_digest"] != issued.config_digest:
        return "config_digest", "configuration differs from the one the server issued"
    return None
