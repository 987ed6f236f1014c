"""What the local API does: list models, forward handler calls, read logs."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

import httpx
from fastapi import Response
from fastapi.responses import StreamingResponse

from modelyard_agent.agent import Agent
from modelyard_agent.api.schemas import ModelList, ModelLogs, ModelStatus
from modelyard_agent.routes import Route
from modelyard_agent.store import DeploymentRecord
from modelyard_common.errors import NotFoundError, ProblemError, ServiceUnavailableError

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


def list_models(*, agent: Agent) -> ModelList:
    """Return every non-removed deployment of the device with its serving status."""
    items = [_status(agent, r) for r in agent.store.all() if not r.is_tombstone]
    items.sort(key=lambda m: m.model_name)
    return ModelList(items=items)


async def call_handler(
    *, agent: Agent, model_name: str, handler: str, body: bytes, content_type: str | None
) -> Response:
    """Return the model container's answer to `POST /<handler>`, relayed as it arrives.

    The answer is streamed (server-sent events of an `openai` project pass through chunk by
    chunk); the call counts as in flight until its last byte, so an update drains it first.
    """
    calls = contextlib.AsyncExitStack()
    route = calls.enter_context(agent.routes.use(model_name))
    if route is None:
        await calls.aclose()
        record = _record_for(agent, model_name)
        raise ServiceUnavailableError(
            f"Model {model_name!r} is not running (state: {record.state.value}).",
            headers={"Retry-After": "5"},
            state=record.state.value,
        )
    return await relay(
        agent,
        calls,
        route,
        method="POST",
        path=handler,
        query="",
        body=body,
        headers={"content-type": content_type or "application/json"},
    )


async def relay(
    agent: Agent,
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
        request = agent.proxy_http.build_request(
            method,
            f"{route.base_url}/{path}" + (f"?{query}" if query else ""),
            content=body,
            headers=headers,
        )
        try:
            upstream = await agent.proxy_http.send(request, stream=True)
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


async def model_logs(*, agent: Agent, model_name: str, tail: int) -> ModelLogs:
    """Return the last `tail` log lines of the container serving (or last serving) a model."""
    record = _record_for(agent, model_name)
    containers = await agent.docker.list_managed(record.deployment_id)
    route = agent.routes.get(model_name)
    chosen = next((c for c in containers if route and c.id == route.container_id), None)
    chosen = chosen or (containers[0] if containers else None)
    lines = await agent.docker.logs(chosen.id, tail) if chosen else []
    return ModelLogs(
        model_name=model_name,
        deployment_id=record.deployment_id,
        version_id=chosen.version_id if chosen else None,
        lines=lines,
    )


def _record_for(agent: Agent, model_name: str) -> DeploymentRecord:
    for record in agent.store.all():
        if record.command.version.model_name == model_name and not record.is_tombstone:
            return record
    raise NotFoundError(f"No model named {model_name!r} is deployed on this device.")


def _status(agent: Agent, record: DeploymentRecord) -> ModelStatus:
    desired = record.command.version
    route = agent.routes.for_deployment(record.deployment_id)
    active = record.active_version if route is not None else None
    return ModelStatus(
        model_name=desired.model_name,
        model_id=desired.model_id,
        deployment_id=record.deployment_id,
        state=record.state,
        desired_state=record.command.desired_state,
        desired_version_id=desired.id,
        desired_version_number=desired.number,
        version_id=route.version_id if route else None,
        version_number=active.number if active else None,
        running=route is not None,
        message=record.message,
        handlers=[h.name for h in desired.manifest.handlers],
        url=f"/models/{desired.model_name}",
    )
