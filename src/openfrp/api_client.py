"""The command line's client for the server's HTTP API: one call with a JSON answer, and a
connect link (or a saved ticket file) resolved to its session ticket. Failures are one-line
messages (ApiCallError), never tracebacks; a URL of another form is a usage mistake
(SettingsError) named before any call."""

from __future__ import annotations

import json
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

from openfrp.settings import SettingsError


def api(
    method: str,
    url: str,
    key: str,
    body: dict[str, Any] | bytes | None = None,
    timeout: float = 10.0,
    header: str = "Authorization",
) -> dict[str, Any]:
    """Call the server's API with a JSON body (or raw bytes); failures become one-line
    messages, never tracebacks."""
    data = body if isinstance(body, bytes) or body is None else json.dumps(body).encode()
    credential = f"Bearer {key}" if header == "Authorization" else key
    kind = "application/octet-stream" if isinstance(body, bytes) else "application/json"
    request = urllib.request.Request(
        url, data=data, method=method, headers={header: credential, "Content-Type": kind}
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            result = json.loads(response.read())
        if not isinstance(result, dict):
            raise ValueError("not an object")
        return result
    except UnicodeEncodeError:
        raise SettingsError(f"{method} {url}: the key has characters no header can carry") from None
    except ValueError:  # another web server answers at that address (json's errors are these)
        raise ApiCallError(
            f"{method} {url}: the answer is not the openfrp API's (not JSON): is this the "
            "openfrp server's address?"
        ) from None
    except urllib.error.HTTPError as exc:
        try:
            answer = json.loads(exc.read())
        except ValueError:
            answer = {}
        answer = answer if isinstance(answer, dict) else {}
        detail = answer.get("error", exc.reason)
        step = answer.get("next")  # what the caller can do about it, where the server says
        detail += f". {step}" if isinstance(step, str) and step else ""
        raise ApiCallError(f"{method} {url}: {exc.code} {detail}", exc.code, answer) from None
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise ApiCallError(
            f"{method} {url}: server not reachable ({reason}): is the server running, and is "
            "this its address?"
        ) from None


def checked_url(option: str, text: str, schemes: tuple[str, ...], form: str) -> str:
    """`text` if it is a URL of one of `schemes` with a host, else SettingsError naming `option`
    and the expected `form`: urllib and websockets take 'localhost', '127.0.0.1:8470' or
    'ftp://...' for a URL and fail later, with a traceback or a misleading reason (or, for a
    WebSocket, only after retrying for connect_timeout)."""
    parts = urllib.parse.urlsplit(text)
    try:
        host = parts.hostname if parts.port != 0 else None
    except ValueError:  # a port that is not a number or out of range
        host = None
    printable = text.isascii() and text.isprintable() and " " not in text
    if parts.scheme.lower() not in schemes or not host or parts.fragment or not printable:
        raise SettingsError(f"{option} {text!r}: expected {form}")
    return text


def segment(text: str) -> str:
    """`text` as one path segment of a URL: a session id with '/', '?', '#' or a space in it
    names that session, not another route, query or nothing at all."""
    return urllib.parse.quote(text, safe="")


class ApiCallError(SettingsError):
    """The API answered with an error (`status`, `answer`) or could not be reached (None)."""

    def __init__(
        self, message: str, status: int | None = None, answer: dict[str, Any] | None = None
    ) -> None:
        super().__init__(message)
        self.status = status
        self.answer = answer or {}


def fetch_ticket(link: str, timeout: float) -> dict[str, Any]:
    """Resolve a connect link (http://HOST:PORT/s/ID#token=T, or ?token=T as older links had
    it) or a ticket file to a ticket."""
    path = Path(link)
    if not link.startswith(("http://", "https://")):
        try:
            data: dict[str, Any] = json.loads(path.read_text())
            return data
        except (OSError, ValueError) as exc:
            raise SettingsError(
                f"'{link}' is neither a connect link nor a ticket file ({exc})"
            ) from None
    parts = urllib.parse.urlsplit(link)
    token = (
        urllib.parse.parse_qs(parts.fragment).get("token", [""])[0]
        or urllib.parse.parse_qs(parts.query).get("token", [""])[0]
    )
    prefix, _, session = parts.path.rstrip("/").rpartition("/s/")
    if not session or "/" in session or not token:
        raise SettingsError(f"'{link}' is not a connect link (expected .../s/SESSION#token=T)")
    base = f"{parts.scheme}://{parts.netloc}{prefix}"  # a front end may serve it under a prefix
    # The link's path is a URL's: decoded first, so an id it escaped is not escaped twice.
    ticket_url = f"{base}/api/sessions/{segment(urllib.parse.unquote(session))}/ticket"
    return api("GET", ticket_url, token, timeout=timeout)
