"""Routes of `/v1/deployments`: deploy, read, act on a deployment, its history.

The same deployments seen from one device or one model are routed in `scoped_router`.
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from typing import Annotated

from fastapi import APIRouter, Depends, Query, status
from fastapi.responses import JSONResponse

from modelyard_common.auth import Viewer
from modelyard_common.contracts import CommandAction, DeploymentState, DesiredState
from modelyard_common.db import SessionDep
from modelyard_common.errors import problem_responses
from modelyard_common.http import IdempotencyKey
from modelyard_common.pagination import Page, PageParams, page_params
from modelyard_deployer.deployments import actions, repository, service
from modelyard_deployer.deployments.schemas import (
    Deployment,
    DeploymentBatch,
    DeploymentCreate,
    HistoryEntry,
    Redeploy,
)
from modelyard_deployer.deps import BrokerDep, RegistryDep, SettingsDep, creates
from modelyard_deployer.web import AuthorizationHeader

router = APIRouter(prefix="/v1/deployments", tags=["deployments"])

DeploymentPage = Annotated[PageParams, Depends(page_params("-created_at", repository.SORTS))]
HistoryPage = Annotated[PageParams, Depends(page_params("recorded_at", repository.HISTORY_SORTS))]
StateFilter = Annotated[DeploymentState | None, Query(description="Last reported state.")]
DesiredFilter = Annotated[DesiredState | None, Query(description="Desired state.")]
SourceFilter = Annotated[
    str | None, Query(pattern="^(agent|deployer)$", description="`agent` reports or actions.")
]


@router.post(
    "",
    operation_id="create_deployment",
    summary="Deploy a version to devices (by id or by label selector)",
    description="Makes one deployment per device. A device that already has a live deployment "
    "of the model is redeployed to the version (download-then-switch on the device).",
    status_code=status.HTTP_201_CREATED,
    response_model=DeploymentBatch,
    responses=problem_responses(401, 403, 404, 409, 422, 503),
)
async def create_deployment(
    body: DeploymentCreate,
    session: SessionDep,
    principal: Viewer,
    registry: RegistryDep,
    broker: BrokerDep,
    settings: SettingsDep,
    authorization: AuthorizationHeader,
    idempotency_key: IdempotencyKey = None,
) -> JSONResponse:
    await service.authorize_create(session, principal=principal, body=body)
    return await creates.respond(
        session,
        principal=principal,
        operation="create_deployment",
        key=idempotency_key,
        body=body,
        create=lambda: service.create_deployments(
            session,
            registry=registry,
            broker=broker,
            settings=settings,
            principal=principal,
            body=body,
            authorization=authorization,
        ),
    )


@router.get(
    "",
    operation_id="list_deployments",
    summary="List deployments, filtered by model, device, version or state",
    responses=problem_responses(401, 404, 422),
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


@router.get(
    "/{deployment_id}",
    operation_id="get_deployment",
    summary="Get one deployment and its live status",
    responses=problem_responses(401, 404),
)
async def get_deployment(
    deployment_id: uuid.UUID, session: SessionDep, principal: Viewer
) -> Deployment:
    return await service.get_deployment(session, principal=principal, deployment_id=deployment_id)


@router.get(
    "/{deployment_id}/history",
    operation_id="get_deployment_history",
    summary="Every state a deployment reported, and every action taken on it",
    responses=problem_responses(401, 404, 422),
)
async def get_deployment_history(
    deployment_id: uuid.UUID,
    session: SessionDep,
    principal: Viewer,
    params: HistoryPage,
    source: SourceFilter = None,
) -> Page[HistoryEntry]:
    return await service.deployment_history(
        session, principal=principal, params=params, deployment_id=deployment_id, source=source
    )


ActionRoute = Callable[..., Awaitable[Deployment]]


def _action_route(action: CommandAction) -> ActionRoute:
    async def route(
        deployment_id: uuid.UUID,
        session: SessionDep,
        principal: Viewer,
        broker: BrokerDep,
        settings: SettingsDep,
        registry: RegistryDep,
        authorization: AuthorizationHeader,
    ) -> Deployment:
        return await actions.act(
            session,
            broker=broker,
            settings=settings,
            principal=principal,
            deployment_id=deployment_id,
            action=action,
            registry=registry,
            authorization=authorization,
        )

    return route


_ACTIONS = {
    CommandAction.start: "Start a stopped deployment",
    CommandAction.stop: "Stop a deployment (the container stays on the device)",
    CommandAction.restart: "Restart a deployment's container",
    CommandAction.rollback: "Roll back to the previous version",
    CommandAction.cancel: "Cancel a deployment stuck in progress",
}
for _action, _summary in _ACTIONS.items():
    router.add_api_route(
        f"/{{deployment_id}}/{_action.value}",
        _action_route(_action),
        methods=["POST"],
        operation_id=f"{_action.value}_deployment",
        summary=_summary,
        status_code=status.HTTP_202_ACCEPTED,
        response_model=Deployment,
        responses=problem_responses(401, 403, 404, 409, 503),
    )


@router.post(
    "/{deployment_id}/redeploy",
    operation_id="redeploy_deployment",
    summary="Switch a deployment to another version of its model",
    status_code=status.HTTP_202_ACCEPTED,
    responses=problem_responses(401, 403, 404, 409, 422, 503),
)
async def redeploy_deployment(
    deployment_id: uuid.UUID,
    body: Redeploy,
    session: SessionDep,
    principal: Viewer,
    registry: RegistryDep,
    broker: BrokerDep,
    settings: SettingsDep,
    authorization: AuthorizationHeader,
) -> Deployment:
    return await actions.redeploy(
        session,
        registry=registry,
        broker=broker,
        settings=settings,
        principal=principal,
        deployment_id=deployment_id,
        body=body,
        authorization=authorization,
    )


# Removing is an action too (always allowed, never judged), answered on DELETE.
router.add_api_route(
    "/{deployment_id}",
    _action_route(CommandAction.remove),
    methods=["DELETE"],
    operation_id="remove_deployment",
    summary="Remove a deployment from its device",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=Deployment,
    responses=problem_responses(401, 403, 404, 409),
)
