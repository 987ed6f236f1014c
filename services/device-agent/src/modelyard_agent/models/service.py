"""What the local API does: list models, forward handler calls, read logs."""

from __future__ import annotations

import contextlib

import httpx
from fastapi import Response

from modelyard_agent.containers.runtime import DockerRuntime
from modelyard_agent.models.relay import relay
from modelyard_agent.models.schemas import ModelList, ModelLogs, ModelStatus
from modelyard_agent.routes import RouteTable
from modelyard_agent.store import DeploymentRecord, DesiredStateStore
from modelyard_common.errors import NotFoundError, ServiceUnavailableError


def list_models(*, store: DesiredStateStore, routes: RouteTable) -> ModelList:
    """Return every non-removed deployment of the device with its serving status."""
    items = [_status(routes, r) for r in store.all() if not r.is_tombstone]
    items.sort(key=lambda m: m.model_name)
    return ModelList(items=items)


async def call_handler(
    *,
    store: DesiredStateStore,
    routes: RouteTable,
    client: httpx.AsyncClient,
    model_name: str,
    handler: str,
    body: bytes,
    content_type: str | None,
) -> Response:
    """Return the model container's answer to `POST /<handler>`, relayed as it arrives.

    The answer is streamed (server-sent events of an `openai` project pass through chunk by
    chunk); the call counts as in flight until its last byte, so an update drains it first.
    """
    calls = contextlib.AsyncExitStack()
    route = calls.enter_context(routes.use(model_name))
    if route is None:
        await calls.aclose()
        record = _record_for(store, model_name)
        raise ServiceUnavailableError(
            f"Model {model_name!r} is not running (state: {record.state.value}).",
            headers={"Retry-After": "5"},
            state=record.state.value,
        )
    return await relay(
        client,
        calls,
        route,
        method="POST",
        path=handler,
        query="",
        body=body,
        headers={"content-type": content_type or "application/json"},
    )


async def model_logs(
    *,
    store: DesiredStateStore,
    routes: RouteTable,
    docker: DockerRuntime,
    model_name: str,
    tail: int,
) -> ModelLogs:
    """Return the last `tail` log lines of the container serving (or last serving) a model."""
    record = _record_for(store, model_name)
    containers = await docker.list_managed(record.deployment_id)
    route = routes.get(model_name)
    chosen = next((c for c in containers if route and c.id == route.container_id), None)
    chosen = chosen or (containers[0] if containers else None)
    lines = await docker.logs(chosen.id, tail) if chosen else []
    return ModelLogs(
        model_name=model_name,
        deployment_id=record.deployment_id,
        version_id=chosen.version_id if chosen else None,
        lines=lines,
    )


def _record_for(store: DesiredStateStore, model_name: str) -> DeploymentRecord:
    for record in store.all():
        if record.command.version.model_name == model_name and not record.is_tombstone:
            return record
    raise NotFoundError(f"No model named {model_name!r} is deployed on this device.")


def _status(routes: RouteTable, record: DeploymentRecord) -> ModelStatus:
    desired = record.command.version
    route = routes.for_deployment(record.deployment_id)
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
