"""What the proxy checks of a request before any upstream sees it: key, size, JSON, deadline."""

from __future__ import annotations

import asyncio
from typing import Any

import orjson

from modelyard_gateway.proxy.wire import TIMEOUT_HEADER, ClientError, Receive, Scope
from modelyard_gateway.settings import GatewaySettings


def bearer(scope: Scope) -> str | None:
    """Return the bearer token of the request, or None."""
    for name, value in scope["headers"]:
        if name == b"authorization":
            scheme, _, token = value.decode("latin-1").partition(" ")
            return token.strip() if scheme.lower() == "bearer" and token.strip() else None
    return None


def _too_large() -> ClientError:
    return ClientError(
        413,
        "The request body is too large.",
        type_="invalid_request_error",
        code="too_large",
    )


async def read_body(receive: Receive, limit: int) -> bytes:
    """Return the whole request body; 413 past `limit` bytes."""
    message = await receive()
    body: bytes = message.get("body", b"")
    if not message.get("more_body", False):
        if len(body) > limit:
            raise _too_large()
        return body
    parts = [body]
    size = len(body)
    while message.get("more_body", False):
        message = await receive()
        if message["type"] == "http.disconnect":
            raise asyncio.CancelledError
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise _too_large()
        parts.append(chunk)
    return b"".join(parts)


def parse_request(raw: bytes) -> dict[str, Any]:
    """Return the request document: a JSON object with a `model` and a boolean `stream`."""
    try:
        request = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise ClientError(
            400,
            "The request body is not valid JSON.",
            type_="invalid_request_error",
            code="invalid_json",
        ) from exc
    if not isinstance(request, dict) or "model" not in request:
        raise ClientError(
            400,
            "The request body must be a JSON object with a `model`.",
            type_="invalid_request_error",
            code="missing_model",
            param="model",
        )
    if not isinstance(request.get("stream", False), bool):
        raise ClientError(
            400,
            "`stream` must be true or false.",
            type_="invalid_request_error",
            code="invalid_type",
            param="stream",
        )
    return request


def budget(scope: Scope, settings: GatewaySettings) -> float:
    """Return the request's deadline in seconds: `X-Modelyard-Timeout` if given, capped."""
    for name, value in scope["headers"]:
        if name == TIMEOUT_HEADER:
            try:
                seconds = float(value.decode("latin-1"))
            except ValueError:
                seconds = -1.0
            if not seconds > 0 or seconds == float("inf"):
                raise ClientError(
                    400,
                    "X-Modelyard-Timeout must be a positive number of seconds.",
                    type_="invalid_request_error",
                    code="invalid_timeout",
                )
            return min(seconds, settings.max_request_deadline_s)
    return min(settings.request_deadline_s, settings.max_request_deadline_s)
