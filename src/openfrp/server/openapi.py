"""OpenAPI for the HTTP API, generated from the app's routes so it cannot drift from them.

Each operation's summary and description come from its endpoint's docstring; path
parameters come from the route. WebSocket routes, which OpenAPI cannot describe, are listed
under `x-websockets`.
"""

from __future__ import annotations

import inspect
import re
from importlib import metadata
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route, WebSocketRoute
from starlette.schemas import BaseSchemaGenerator

from openfrp import PROTOCOL_VERSION

PARAM = re.compile(r"{(\w+)}")


def _version() -> str:
    try:
        return metadata.version("openfrp")
    except metadata.PackageNotFoundError:
        return "unknown"


class Generator(BaseSchemaGenerator):
    def get_schema(self, routes: list[BaseRoute]) -> dict[str, Any]:
        paths: dict[str, dict[str, Any]] = {}
        for endpoint in self.get_endpoints(routes):
            doc = inspect.getdoc(endpoint.func) or endpoint.func.__name__.replace("_", " ")
            summary, _, rest = doc.partition("\n")
            operation: dict[str, Any] = {
                "operationId": f"{endpoint.http_method}_{endpoint.func.__name__}",
                "summary": summary.strip(),
                "responses": {"default": {"description": "JSON, or the page or script asked"}},
            }
            if rest.strip():
                operation["description"] = rest.strip()
            names = PARAM.findall(endpoint.path)
            if names:
                operation["parameters"] = [
                    {"name": n, "in": "path", "required": True, "schema": {"type": "string"}}
                    for n in names
                ]
            paths.setdefault(endpoint.path, {})[endpoint.http_method] = operation
        return {
            "openapi": "3.1.0",
            "info": {
                "title": "openfrp",
                "version": _version(),
                "x-protocol-version": PROTOCOL_VERSION,
            },
            "paths": paths,
            "x-websockets": sorted(r.path for r in routes if isinstance(r, WebSocketRoute)),
        }


async def openapi(request: Request) -> Response:
    """This document: the HTTP API, generated from the routes."""
    return JSONResponse(Generator().get_schema(request.app.routes))


ROUTES = [Route("/api/openapi.json", openapi)]
