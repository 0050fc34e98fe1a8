"""The browser terminal: the page behind every connect link, its scripts, and the code table.

A connect link (/s/SESSION#token=T) opens the page; its script fetches the ticket with the
token (sent as a header: the fragment never reaches a server or proxy log) and the code table
from /api/codes, so the pop-ups say what `openfrp.codes` says.
"""

from __future__ import annotations

from functools import cache
from importlib import resources

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from openfrp import PROTOCOL_VERSION, codes

SCRIPTS = (
    "connection.js",
    "peer_setup.js",
    "terminal.js",
    "palette.js",
    "video.js",
    "track.js",
    "stats.js",
    "menu.js",
    "input.js",
    "clipboard.js",
    "files.js",
)


@cache
def _static(name: str) -> str:
    return resources.files("openfrp.terminal").joinpath("static", name).read_text("utf-8")


async def terminal_page(request: Request) -> Response:
    return Response(_static("terminal.html"), media_type="text/html; charset=utf-8")


async def terminal_script(request: Request) -> Response:
    name = request.path_params["name"]
    if name not in SCRIPTS:
        return JSONResponse({"error": f"no script '{name}'"}, status_code=404)
    return Response(_static(name), media_type="text/javascript; charset=utf-8")


async def code_table(request: Request) -> Response:
    return JSONResponse(
        {"protocol_version": PROTOCOL_VERSION, "codes": [c.to_dict() for c in codes.TABLE]}
    )


async def no_icon(request: Request) -> Response:
    """Browsers ask every page's server for an icon; say there is none, without an error."""
    return Response(status_code=204)


ROUTES = [
    Route("/favicon.ico", no_icon, include_in_schema=False),
    Route("/s/{session_id}", terminal_page),
    Route("/terminal/{name}", terminal_script),
    Route("/api/codes", code_table),
]
