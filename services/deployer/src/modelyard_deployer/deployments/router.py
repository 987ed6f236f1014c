"""Routes of `/v1/deployments`: deploy, read, act on a deployment, its history.

The same deployments seen from one device or one model are routed in `scoped_router`.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import datetime
from typing import Annotated

import anyio
from fastapi import APIRouter, Depends, Query, status
from fastapi.responses import JSONResponse, PlainTextResponse, Response, StreamingResponse
from pydantic import BaseModel
from starlette.types import Receive, Scope, Send

from modelyard_common.auth import Viewer
from modelyard_common.contracts import MAX_LOG_TAIL, CommandAction, DeploymentState, DesiredState
from modelyard_common.db import SessionDep
from modelyard_common.http import IdempotencyKey
from modelyard_common.pagination import Page, PageParams, page_params
from modelyard_common.routes import Routes
from modelyard_deployer.deployments import actions, logs, repository, service
from modelyard_deployer.deployments.deploying import Deploying
from modelyard_deployer.deployments.schemas import (
    Deployment,
    DeploymentBatch,
    DeploymentCreate,
    DeviceTargets,
    HistoryEntry,
    Redeploy,
)
from modelyard_deployer.deps import (
    BrokerDep,
    BrokerLoginsDep,
    RegistryDep,
    SessionmakerDep,
    SettingsDep,
    creates,
)
from modelyard_deployer.web import AuthorizationHeader, scoped

router = APIRouter(prefix="/v1/deployments", tags=["deployments"])
deployments = Routes(router, item="/{deployment_id}")

DeploymentPage = Annotated[PageParams, Depends(page_params("-created_at", repository.SORTS))]
HistoryPage = Annotated[PageParams, Depends(page_params("recorded_at", repository.HISTORY_SORTS))]
StateFilter = Annotated[DeploymentState | None, Query(description="Last reported state.")]
DesiredFilter = Annotated[DesiredState | None, Query(description="Desired state.")]
SourceFilter = Annotated[
    str | None, Query(pattern="^(agent|deployer)$", description="`agent` reports or actions.")
]


def deploying(
    session: SessionDep,
    principal: Viewer,
    registry: RegistryDep,
    broker: BrokerDep,
    settings: SettingsDep,
    authorization: AuthorizationHeader,
) -> Deploying:
    """Return the caller of this request with what deploying takes."""
    return Deploying(session, principal, registry, broker, settings, authorization)


DeployingDep = Annotated[Deploying, Depends(deploying)]


async def deploy_once(
    deploying: Deploying,
    body: DeviceTargets,
    *,
    operation: str,
    key: str | None,
    create: Callable[[], Awaitable[BaseModel]],
    location: str | None = None,
) -> JSONResponse:
    """Return the 201 of a create that deploys `body`'s version (deployments, a rollout), run
    once per idempotency key; the caller must be allowed to deploy the version, even a replay."""
    session, principal = deploying.session, deploying.principal
    await service.authorize_create(session, principal=principal, body=body)
    return await creates.respond(
        session,
        principal=principal,
        operation=operation,
        key=key,
        body=body,
        create=create,
        location=location,
    )


@deployments.creating(
    "create_deployment",
    "Deploy a version to devices (by id or by label selector)",
    problems=(401, 403, 404, 409, 422, 503),
    description="Makes one deployment per device. A device that already has a live deployment "
    "of the model is redeployed to the version (download-then-switch on the device).",
    response_model=DeploymentBatch,
)
async def create_deployment(
    body: DeploymentCreate, deploying: DeployingDep, idempotency_key: IdempotencyKey = None
) -> JSONResponse:
    return await deploy_once(
        deploying,
        body,
        operation="create_deployment",
        key=idempotency_key,
        create=lambda: service.create_deployments(deploying, body=body),
    )


@deployments.listing(
    "list_deployments",
    "List deployments, filtered by model, device, version or state",
    problems=(401, 404, 422),
)
async def list_deployments(
    session: SessionDep,
    principal: Viewer,
    params: DeploymentPage,
    state: StateFilter = None,
    desired_state: DesiredFilter = None,
    model_id: uuid.UUID | None = None,
    device_id: uuid.UUID | None = None,
    version_id: uuid.UUID | None = None,
) -> Page[Deployment]:
    return await service.list_deployments(
        session,
        principal=principal,
        params=params,
        state=state,
        desired_state=desired_state,
        model_id=model_id,
        device_id=device_id,
        version_id=version_id,
    )


@deployments.reading(
    "get_deployment", "Get one deployment and its live status", problems=(401, 404)
)
async def get_deployment(
    deployment_id: uuid.UUID, session: SessionDep, principal: Viewer
) -> Deployment:
    return await service.get_deployment(session, principal=principal, deployment_id=deployment_id)


async def deployment_history(
    session: SessionDep,
    principal: Viewer,
    params: HistoryPage,
    deployment_id: uuid.UUID | None = None,
    model_id: uuid.UUID | None = None,
    device_id: uuid.UUID | None = None,
    source: SourceFilter = None,
) -> Page[HistoryEntry]:
    return await service.deployment_history(
        session,
        principal=principal,
        params=params,
        deployment_id=deployment_id,
        model_id=model_id,
        device_id=device_id,
        source=source,
    )


# A model's history across its devices is the same handler (`scoped_router`).
deployments.reading(
    "get_deployment_history",
    "Every state a deployment reported, and every action taken on it",
    problems=(401, 404, 422),
    subpath="/history",
)(scoped(deployment_history, "deployment_id", without=("model_id", "device_id")))


ActionRoute = Callable[..., Awaitable[Deployment]]


def _action_route(action: CommandAction) -> ActionRoute:
    async def route(deployment_id: uuid.UUID, deploying: DeployingDep) -> Deployment:
        return await actions.act(deploying, deployment_id=deployment_id, action=action)

    return route


_ACTIONS = {
    CommandAction.start: "Start a stopped deployment",
    CommandAction.stop: "Stop a deployment (the container stays on the device)",
    CommandAction.restart: "Restart a deployment's container",
    CommandAction.rollback: "Roll back to the previous version",
    CommandAction.cancel: "Cancel a deployment stuck in progress",
}
for _action, _summary in _ACTIONS.items():
    deployments.acting(
        f"{_action.value}_deployment",
        _summary,
        problems=(401, 403, 404, 409, 503),
        subpath=f"/{_action.value}",
        status_code=status.HTTP_202_ACCEPTED,
        response_model=Deployment,
    )(_action_route(_action))


@deployments.acting(
    "redeploy_deployment",
    "Switch a deployment to another version of its model",
    problems=(401, 403, 404, 409, 422, 503),
    subpath="/redeploy",
    status_code=status.HTTP_202_ACCEPTED,
)
async def redeploy_deployment(
    deployment_id: uuid.UUID, body: Redeploy, deploying: DeployingDep
) -> Deployment:
    return await actions.redeploy(deploying, deployment_id=deployment_id, body=body)


# Removing is an action too (always allowed, never judged), answered on DELETE.
deployments.deleting(
    "remove_deployment",
    "Remove a deployment from its device",
    problems=(401, 403, 404, 409),
    status_code=status.HTTP_202_ACCEPTED,
    response_model=Deployment,
)(_action_route(CommandAction.remove))


LOG_MEDIA_TYPE = "text/plain; charset=utf-8"


class LogStream(StreamingResponse):
    """A followed log stream that ends its device conversation however the response ends."""

    def __init__(self, conversation: logs.DeviceLogs, idle_s: float) -> None:
        super().__init__(_log_text(conversation, idle_s), media_type=LOG_MEDIA_TYPE)
        self.conversation = conversation
        self.headers["Cache-Control"] = "no-store"
        self.headers["X-Accel-Buffering"] = "no"

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        # A quiet stream writes nothing, so a server that reports a gone client only when a
        # write fails (ASGI 2.4) would not tell: the disconnect is watched for here as well.
        stream = super().__call__
        try:
            async with anyio.create_task_group() as group:

                async def respond() -> None:
                    try:
                        await stream(scope, receive, send)
                    finally:
                        group.cancel_scope.cancel()

                async def watch() -> None:
                    while (await receive())["type"] != "http.disconnect":
                        pass
                    group.cancel_scope.cancel()

                group.start_soon(respond)
                group.start_soon(watch)
        finally:
            await self.conversation.close()


async def _log_text(conversation: logs.DeviceLogs, idle_s: float) -> AsyncIterator[str]:
    """Yield the lines of a followed stream as text until it ends (a silent device ends it)."""
    try:
        async for chunk in conversation.chunks(idle_s=idle_s):
            if chunk.lines:
                yield "".join(f"{line}\n" for line in chunk.lines)
    except logs.DeviceTimeoutError:
        return  # the status line is sent already: the stream just ends
    finally:
        await conversation.close()


@deployments.reading(
    "get_deployment_logs",
    "Read (or follow) the log lines of a deployment's container, from its device",
    problems=(401, 404, 409, 422, 502, 503, 504),
    subpath="/logs",
    description="Asks the deployment's device, over its own command channel, for the last "
    "`tail` lines its container wrote (stdout and stderr, as `docker logs`), answered as "
    "`text/plain`, one line per line: what `curl`, a terminal or a log tool reads as is. "
    "With `follow=true` the answer is a chunked `text/plain` stream of the last `tail` lines "
    "and then each new line as the container writes it, until the client disconnects, the "
    "device stops or the deployer's bounds (`MODELYARD_DEPLOYER_LOGS_FOLLOW_MAX_S`, "
    "`..._FOLLOW_MAX_BYTES`) are reached. Lines are cleaned: control characters (NUL, escape "
    "sequences) removed, each cut at 8,192 characters. `X-Modelyard-Truncated: true` says a "
    "tail lost lines to its byte bound or had lines cut. Read as the deployment is read: a "
    "caller who may not see it gets 404 and nothing is sent to the device. A device that is "
    "not connected gets 503 (`device-offline`), one that does not answer in time 504 "
    "(`device-timeout`), a deployment with no container on its device 409 (`no-container`).",
    response_class=PlainTextResponse,
    responses={
        200: {
            "content": {"text/plain": {"example": "listening on 8080\nready\n"}},
            "description": "The lines, oldest first, each ending in a newline",
        }
    },
)
async def get_deployment_logs(
    deployment_id: uuid.UUID,
    principal: Viewer,
    broker: BrokerDep,
    logins: BrokerLoginsDep,
    settings: SettingsDep,
    sessionmaker: SessionmakerDep,
    tail: Annotated[
        int, Query(ge=0, le=MAX_LOG_TAIL, description="How many of the last lines to send.")
    ] = 100,
    follow: Annotated[
        bool, Query(description="Keep the answer open and send new lines as they come.")
    ] = False,
    since: Annotated[
        datetime | None, Query(description="Only lines written at or after this time.")
    ] = None,
) -> Response:
    # Authorized in a short transaction of its own: no pooled connection waits on the device.
    async with sessionmaker() as session, session.begin():
        deployment = await logs.readable_deployment(
            session, principal=principal, deployment_id=deployment_id
        )
    conversation = await logs.ask_device(
        broker=broker,
        logins=logins,
        settings=settings,
        deployment=deployment,
        query=logs.LogsQuery(tail=tail, follow=follow, since=since),
    )
    idle_s = settings.logs_keepalive_s * 3 + settings.logs_timeout_s
    if follow:
        return LogStream(conversation, idle_s)
    try:
        lines = [
            line
            async for chunk in conversation.chunks(idle_s=settings.logs_timeout_s)
            for line in chunk.lines
        ]
    finally:
        await conversation.close()
    headers = {"Cache-Control": "no-store"}
    if conversation.truncated:
        headers["X-Modelyard-Truncated"] = "true"
    return PlainTextResponse(
        "".join(f"{line}\n" for line in lines), media_type=LOG_MEDIA_TYPE, headers=headers
    )
