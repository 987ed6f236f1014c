"""What the ingress does: find the deployment's container and relay the request to it."""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Mapping

import httpx
from fastapi import Response

from modelyard_agent.models.relay import relay
from modelyard_agent.routes import RouteTable
from modelyard_common.errors import ServiceUnavailableError

# Only what a model needs to understand the request; the caller's credential stays here.
_FORWARDED = ("content-type", "accept", "accept-encoding", "x-request-id")


async def forward(
    *,
    routes: RouteTable,
    client: httpx.AsyncClient,
    deployment_id: uuid.UUID,
    method: str,
    path: str,
    query: str,
    body: bytes,
    headers: Mapping[str, str],
) -> Response:
    """Return the deployment's answer to the request, streamed as it arrives."""
    calls = contextlib.AsyncExitStack()
    route = calls.enter_context(routes.use_deployment(deployment_id))
    if route is None:
        await calls.aclose()
        raise ServiceUnavailableError(
            f"Deployment {deployment_id} is not running on this device.",
            headers={"Retry-After": "5"},
        )
    return await relay(
        client,
        calls,
        route,
        method=method,
        path=path,
        query=query,
        body=body,
        headers={k: headers[k] for k in _FORWARDED if k in headers},
    )
