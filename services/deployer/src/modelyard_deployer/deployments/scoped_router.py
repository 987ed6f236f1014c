"""Routes of deployments as seen from one device or one model (lists, history, endpoints)."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Query, status

from modelyard_common.auth import Viewer
from modelyard_common.db import SessionDep
from modelyard_common.pagination import Page
from modelyard_common.routes import Routes
from modelyard_deployer.deployments import service
from modelyard_deployer.deployments.router import (
    DeploymentPage,
    DesiredFilter,
    StateFilter,
    deployment_history,
    list_deployments,
)
from modelyard_deployer.deployments.schemas import Deployment, EndpointsAnnounced
from modelyard_deployer.deps import SettingsDep
from modelyard_deployer.web import scoped

device_router = APIRouter(prefix="/v1/devices/{device_id}/deployments", tags=["deployments"])
model_router = APIRouter(prefix="/v1/models/{model_id}", tags=["deployments"])
model_scope = Routes(model_router)  # the model is the item: its prefix names it


@Routes(device_router).listing(
    "list_device_deployments",
    "The models on a device and their live status (manage models)",
    problems=(401, 404, 422),
    tags=["devices"],
)
async def list_device_deployments(
    device_id: uuid.UUID,
    session: SessionDep,
    principal: Viewer,
    params: DeploymentPage,
    state: StateFilter = None,
    desired_state: DesiredFilter = None,
    model_id: uuid.UUID | None = None,
    include_removed: Annotated[
        bool, Query(description="Also list deployments already removed from the device.")
    ] = False,
) -> Page[Deployment]:
    return await service.list_deployments(
        session,
        principal=principal,
        params=params,
        state=state,
        desired_state=desired_state,
        device_id=device_id,
        model_id=model_id,
        include_removed=include_removed,
    )


# The handlers of `/v1/deployments` with the model fixed by the path.
model_scope.listing(
    "list_model_deployments",
    "A model's deployments across devices",
    problems=(401, 404, 422),
    subpath="/deployments",
)(scoped(list_deployments, "model_id"))
model_scope.listing(
    "list_model_deployment_history",
    "A model's deployment history across devices",
    problems=(401, 404, 422),
    subpath="/deployment-history",
)(scoped(deployment_history, "model_id", without=("deployment_id",)))


@model_scope.acting(
    "announce_model_endpoints",
    "Announce again the running endpoints of a model (a gateway group bound just now)",
    problems=(401, 404),
    subpath="/endpoints/announce",
    description="Queues `deployer.deployment.endpoint_ready` for every running OpenAI-compatible "
    "deployment of the model in the workspace, so a gateway group created or re-bound after "
    "they started serves them. The answer counts them; the events carry the rest.",
    status_code=status.HTTP_202_ACCEPTED,
)
async def announce_model_endpoints(
    model_id: uuid.UUID, session: SessionDep, principal: Viewer, settings: SettingsDep
) -> EndpointsAnnounced:
    count = await service.announce_model_endpoints(
        session, settings=settings, principal=principal, model_id=model_id
    )
    return EndpointsAnnounced(announced=count)
