"""Relaying one request to the container serving a route, its answer streamed back."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

import httpx
from fastapi import Response
from fastapi.responses import StreamingResponse

from modelyard_agent.routes import Route
from modelyard_common.errors import ProblemError

# Hop-by-hop and length headers are recomputed by the server answering the client.
_DROPPED_HEADERS = {
    "content-length",
    "transfer-encoding",
    "connection",
    "keep-alive",
    "server",
    "date",
}


class BadGatewayError(ProblemError):
    status, title, slug = 502, "Bad Gateway", "bad-gateway"


async def relay(
    client: httpx.AsyncClient,
    calls: contextlib.AsyncExitStack,
    route: Route,
    *,
    method: str,
    path: str,
    query: str,
    body: bytes,
    headers: dict[str, str],
) -> Response:
    """Return the container's answer to one request, streamed; `calls` closes after its end."""
    try:
        request = client.build_request(
            method,
            f"{route.base_url}/{path}" + (f"?{query}" if query else ""),
            content=body,
            headers=headers,
        )
        try:
            upstream = await client.send(request, stream=True)
        except httpx.HTTPError as exc:
            raise BadGatewayError(
                f"Model {route.model_name!r} did not answer: {type(exc).__name__}."
            ) from exc
    except BaseException:
        await calls.aclose()
        raise
    calls.push_async_callback(upstream.aclose)

    async def chunks() -> AsyncIterator[bytes]:
        async with calls:
            async for chunk in upstream.aiter_raw():
                yield chunk

    answer = {k: v for k, v in upstream.headers.items() if k.lower() not in _DROPPED_HEADERS}
    answer["x-modelyard-version"] = str(route.version_id)
    return StreamingResponse(chunks(), status_code=upstream.status_code, headers=answer)
