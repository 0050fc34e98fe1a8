"""The command line's client for the server's HTTP API: one call with a JSON answer, and a
connect link (or a saved ticket file) resolved to its session ticket. Failures are one-line
messages (ApiCallError), never tracebacks."""

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
            result: dict[str, Any] = json.loads(response.read())
            return result
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
        raise ApiCallError(f"{method} {url}: server not reachable ({reason})") from None
    except UnicodeEncodeError:
        raise SettingsError(f"{method} {url}: the key has characters no header can carry") from None


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
    return api("GET", f"{base}/api/sessions/{session}/ticket", token, timeout=timeout)
