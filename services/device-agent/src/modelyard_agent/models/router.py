"""Local API routes: thin, one call into `models.service` each."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Path, Query, Request, Response

from modelyard_agent.containers.runtime import DockerRuntime
from modelyard_agent.deps import ProxyClientDep, RoutesDep, StoreDep
from modelyard_agent.models import service
from modelyard_agent.models.schemas import ModelList, ModelLogs
from modelyard_common.errors import problem_responses


def get_docker(request: Request) -> DockerRuntime:
    """Return the device's Docker runtime (container logs are read through it)."""
    docker: DockerRuntime = request.app.state.docker
    return docker


DockerDep = Annotated[DockerRuntime, Depends(get_docker)]
ModelName = Annotated[str, Path(min_length=1, max_length=255, description="The model's name.")]

router = APIRouter(prefix="/models", tags=["models"])


@router.get("", operation_id="list_local_models", summary="List the models on this device")
async def list_models(store: StoreDep, routes: RoutesDep) -> ModelList:
    return service.list_models(store=store, routes=routes)


@router.post(
    "/{model_name}/{handler:path}",
    operation_id="call_model_handler",
    summary="Call a model's handler (forwarded to its container, whatever its version or port)",
    response_class=Response,
    responses={
        200: {"description": "The handler's answer, as the model returned it."},
        **problem_responses(404, 502, 503),
    },
)
async def call_handler(
    store: StoreDep,
    routes: RoutesDep,
    client: ProxyClientDep,
    request: Request,
    model_name: ModelName,
    handler: Annotated[str, Path(pattern=r"^[A-Za-z0-9_./-]{1,255}$")],
) -> Response:
    return await service.call_handler(
        store=store,
        routes=routes,
        client=client,
        model_name=model_name,
        handler=handler,
        body=await request.body(),
        content_type=request.headers.get("content-type"),
    )


@router.get(
    "/{model_name}/logs",
    operation_id="get_model_logs",
    summary="Read the last log lines of a model's container",
    responses=problem_responses(404),
)
async def model_logs(
    store: StoreDep,
    routes: RoutesDep,
    docker: DockerDep,
    model_name: ModelName,
    tail: Annotated[int, Query(ge=1, le=5000)] = 100,
) -> ModelLogs:
    return await service.model_logs(
        store=store, routes=routes, docker=docker, model_name=model_name, tail=tail
    )
