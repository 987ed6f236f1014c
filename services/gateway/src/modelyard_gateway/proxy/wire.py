"""The proxy's raw ASGI vocabulary: paths, headers, the OpenAI-shaped refusal, sending bytes."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from modelyard_gateway.proxy.schemas import error_body
from modelyard_gateway.routing.catalog import GroupRoute

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

POST_PATHS = frozenset({"/v1/chat/completions", "/v1/completions", "/v1/embeddings"})
STREAMING_PATHS = frozenset({"/v1/chat/completions", "/v1/completions"})
MODELS_PATH = "/v1/models"
MODELS_PREFIX = "/v1/models/"

JSON = (b"content-type", b"application/json")
SSE_HEADERS = [
    (b"content-type", b"text/event-stream; charset=utf-8"),
    (b"cache-control", b"no-cache"),
    (b"x-accel-buffering", b"no"),
]
INSTANCE = b"x-modelyard-instance"
ATTEMPTS = b"x-modelyard-attempts"
TIMEOUT_HEADER = b"x-modelyard-timeout"
POLICY_WARNING = b"x-modelyard-policy-warning"


class ClientError(Exception):
    """A request the gateway refuses itself, answered in OpenAI's error shape."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        type_: str,
        code: str,
        param: str | None = None,
        headers: list[tuple[bytes, bytes]] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.body = error_body(message, type_=type_, code=code, param=param)
        self.headers = [JSON, *(headers or ())]


async def send_bytes(
    send: Send, status: int, body: bytes, headers: list[tuple[bytes, bytes]]
) -> None:
    """Send a whole response."""
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


def policy_headers(group: GroupRoute) -> list[tuple[bytes, bytes]]:
    """Return the warning header of a group served only because the gate is `warn`."""
    if group.warning is None:
        return []
    # Header values are latin-1; a model name in another script is replaced, not a 500.
    return [(POLICY_WARNING, group.warning.encode("latin-1", "replace"))]
