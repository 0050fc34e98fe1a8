"""`openfrp guest`: what a session's app asks of its own session: to end it (shutdown, 4015;
logoff, 4018) or to offer a file to the terminal (download).

Standard library only, and the whole command in this one file: the server writes it into each
session's home as the app's `openfrp` command (server/guest_command.py). The app's user may not
reach the server's own install (a venv whose interpreter lives in root's 0700 home), and asking
takes no more than one HTTP request with the session's guest credential, which the app's
environment holds ($OPENFRP_GUEST_URL, $OPENFRP_GUEST_KEY).
"""

from __future__ import annotations

import http.client
import json
import os
import select
import sys
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Mapping
from pathlib import Path
from typing import Any

ACTIONS = ("shutdown", "logoff", "download")
PIECE = 64 * 1024  # a download's body is sent in pieces, watching for an early answer
USAGE = "usage: openfrp guest {shutdown,logoff,download FILE}"


class GuestError(Exception):
    """One line saying what went wrong; `refused`: the server answered no."""

    def __init__(self, message: str, refused: bool = False) -> None:
        super().__init__(message)
        self.refused = refused


def _ask(url: str, key: str, body: bytes, kind: str, timeout: float) -> dict[str, Any]:
    headers = {"X-OpenFRP-Guest-Key": key, "Content-Type": kind}
    request = urllib.request.Request(url, data=body, method="POST", headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            answer: dict[str, Any] = json.loads(response.read())
            return answer
    except urllib.error.HTTPError as exc:
        raise GuestError(f"POST {url}: {_said(exc.code, exc.reason, exc.read())}", True) from None
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise GuestError(f"POST {url}: server not reachable ({reason})") from None
    except UnicodeEncodeError:
        raise GuestError("OPENFRP_GUEST_KEY has characters no header can carry") from None


def _said(status: int, reason: str, raw: bytes) -> str:
    """A refusal in words: the server's error, and its next step when it gave one."""
    try:
        said = json.loads(raw)
    except ValueError:
        said = {}
    said = said if isinstance(said, dict) else {}
    detail = str(said.get("error") or reason)
    if isinstance(said.get("next"), str) and said["next"]:
        detail += f". {said['next']}"
    return f"{status} {detail}"


def _send_file(url: str, key: str, data: bytes, timeout: float) -> dict[str, Any]:
    """POST `data` to `url`, stopping as soon as the server answers: it refuses a file over
    file_transfer_limit (413) before reading its body and closes, and a client that kept
    writing got a reset and said "server not reachable" instead of naming the limit."""
    parts = urllib.parse.urlsplit(url)
    kind = http.client.HTTPSConnection if parts.scheme == "https" else http.client.HTTPConnection
    target = parts.path + (f"?{parts.query}" if parts.query else "")
    connection = kind(parts.hostname or "", parts.port, timeout=timeout)
    try:
        try:
            connection.putrequest("POST", target)
            connection.putheader("X-OpenFRP-Guest-Key", key)
            connection.putheader("Content-Type", "application/octet-stream")
            connection.putheader("Content-Length", str(len(data)))
            connection.endheaders()
            sock, body = connection.sock, memoryview(data)
            for start in range(0, len(data), PIECE):
                if select.select([sock], [], [], 0)[0]:
                    break  # the server answered before the whole body: read its answer
                sock.sendall(body[start : start + PIECE])
        except (BrokenPipeError, ConnectionResetError):
            pass  # closed after an early answer, which may still be there to read
        response = connection.getresponse()
        raw = response.read()
    except (OSError, http.client.HTTPException) as exc:
        raise GuestError(f"POST {url}: server not reachable ({exc})") from None
    except UnicodeEncodeError:
        raise GuestError("OPENFRP_GUEST_KEY has characters no header can carry") from None
    finally:
        connection.close()
    if response.status >= 400:
        raise GuestError(f"POST {url}: {_said(response.status, response.reason, raw)}", True)
    answer: dict[str, Any] = json.loads(raw)
    return answer


def run(action: str, file: str | None, environ: Mapping[str, str] = os.environ) -> str:
    """Ask the session for `action`; what it answered, in words."""
    url, key = environ.get("OPENFRP_GUEST_URL"), environ.get("OPENFRP_GUEST_KEY")
    if not url or not key:
        raise GuestError("not inside an openfrp session (OPENFRP_GUEST_URL/KEY are unset)")
    if action != "download":
        body = json.dumps({"action": action}).encode()
        answer = _ask(url, key, body, "application/json", 10.0)
        return f"session {answer['session_id']} ends with {answer['final_code']}"
    if not file:
        raise GuestError("guest download needs the FILE to offer")
    try:
        data = Path(file).read_bytes()
    except OSError as exc:
        raise GuestError(f"{file}: cannot read ({exc.strerror})") from None
    where = f"{url}/download?name={urllib.parse.quote(Path(file).name)}"
    offered = _send_file(where, key, data, 60.0)["offered"]
    return f"offered {offered['name']} ({offered['size_text']}) to the terminal"


def main(words: list[str]) -> int:
    """`openfrp guest ACTION [FILE]` (`words` after `guest`): 0 done, 1 the server said no,
    2 a mistake or no server to ask."""
    if not words or words[0] not in ACTIONS or len(words) > (2 if words[0] == "download" else 1):
        print(USAGE, file=sys.stderr)
        return 2
    try:
        print(run(words[0], words[1] if len(words) > 1 else None))
    except GuestError as exc:
        print(f"openfrp guest: {exc}", file=sys.stderr)
        return 1 if exc.refused else 2
    return 0


if __name__ == "__main__":  # the session's own `openfrp`: only `guest` is for its app
    given = sys.argv[1:]
    if given[:1] != ["guest"]:
        print(f"inside a session, openfrp runs only guest commands\n{USAGE}", file=sys.stderr)
        sys.exit(2)
    sys.exit(main(given[1:]))
