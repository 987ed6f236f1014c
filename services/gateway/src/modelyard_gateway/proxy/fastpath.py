"""ASGI middleware that hands OpenAI-compatible requests straight to the proxy's handlers."""

from __future__ import annotations

from typing import Any

from modelyard_gateway.proxy.endpoints import ProxyEndpoints
from modelyard_gateway.proxy.wire import (
    MODELS_PATH,
    MODELS_PREFIX,
    POST_PATHS,
    ASGIApp,
    Receive,
    Scope,
    Send,
)


class ProxyFastPath:
    """Serves proxy paths before the rest of the middleware stack (logging, CORS) runs.

    Requests from browsers (an `Origin` header) take the ordinary route through FastAPI, which
    calls the same handlers (`app.state.proxy_endpoints`, built by the lifespan).
    """

    def __init__(self, app: ASGIApp, state: Any) -> None:
        self.app = app
        self.state = state

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Serve proxy paths directly; pass browsers (Origin header) and the rest on."""
        if scope["type"] == "http":
            path = scope["path"]
            method = scope["method"]
            if (
                (method == "POST" and path in POST_PATHS)
                or (method == "GET" and (path == MODELS_PATH or path.startswith(MODELS_PREFIX)))
            ) and not any(name == b"origin" for name, _ in scope["headers"]):
                endpoints: ProxyEndpoints = self.state.proxy_endpoints
                await endpoints(scope, receive, send)
                return
        await self.app(scope, receive, send)
