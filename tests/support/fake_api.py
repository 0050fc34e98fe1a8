"""An HTTP server on loopback that answers every request with one status and JSON body and
records what it was asked: the server's API as the command line's client sees it, for tests of
that client's messages and exit statuses without starting a server."""

from __future__ import annotations

import contextlib
import http.server
import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any


@dataclass
class FakeApi:
    url: str
    status: int = 200
    answer: dict[str, Any] = field(default_factory=dict)
    raw: bytes | None = None  # the body instead of `answer`: another web server's page
    # (method, path as sent, Authorization header) of every request, in order
    requests: list[tuple[str, str, str]] = field(default_factory=list)


@contextlib.contextmanager
def fake_api(
    status: int = 200, answer: dict[str, Any] | None = None, raw: bytes | None = None
) -> Iterator[FakeApi]:
    api = FakeApi("", status, answer or {}, raw)

    class Handler(http.server.BaseHTTPRequestHandler):
        def _answer(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            self.rfile.read(length)
            api.requests.append((self.command, self.path, self.headers.get("Authorization", "")))
            body = json.dumps(api.answer).encode() if api.raw is None else api.raw
            self.send_response(api.status)
            self.send_header("Content-Type", "application/json" if api.raw is None else "text/html")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        do_GET = do_POST = do_DELETE = _answer

        def log_message(self, *args: object) -> None:
            return None

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    api.url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield api
    finally:
        server.shutdown()
        server.server_close()
