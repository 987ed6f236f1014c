"""Routes of `/v1/rollouts`: create, list, read, pause, resume, abort, and the history."""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from typing import Annotated

from fastapi import APIRouter, Depends, Query, status
from fastapi.responses import JSONResponse

from modelyard_common.auth import Viewer
from modelyard_common.db import SessionDep
from modelyard_common.http import IdempotencyKey
from modelyard_common.pagination import Page, PageParams, page_params
from modelyard_common.routes import Routes
from modelyard_deployer.deployments.router import DeployingDep, deploy_once
from modelyard_deployer.rollouts import repository, service
from modelyard_deployer.rollouts.schemas import (
    Rollout,
    RolloutCreate,
    RolloutEvent,
    RolloutState,
    RolloutSummary,
)

router = APIRouter(prefix="/v1/rollouts", tags=["rollouts"])
rollouts = Routes(router, item="/{rollout_id}")

RolloutPage = Annotated[PageParams, Depends(page_params("-created_at", repository.SORTS))]
HistoryPage = Annotated[PageParams, Depends(page_params("recorded_at", repository.HISTORY_SORTS))]
StateFilter = Annotated[RolloutState | None, Query(description="Where the rollout is.")]


@rollouts.creating(
    "create_rollout",
    "Roll a version out to devices in waves, gated on health",
    problems=(401, 403, 404, 409, 422, 503),
    description="Plans the target devices (by id or label selector) in waves, the first being "
    "the canary. The policy gate judges every target now and again before each wave. Each wave "
    "passes when its online devices run the version healthy for `soak_s`; the abort rule (or a "
    "wave timeout) stops the rollout and returns updated devices to the version they ran. A "
    "device already in an unfinished rollout is a 409 naming it.",
    response_model=Rollout,
)
async def create_rollout(
    body: RolloutCreate, deploying: DeployingDep, idempotency_key: IdempotencyKey = None
) -> JSONResponse:
    return await deploy_once(
        deploying,
        body,
        operation="create_rollout",
        key=idempotency_key,
        create=lambda: service.create_rollout(deploying, body=body),
        location="/v1/rollouts/{id}",
    )


@rollouts.listing(
    "list_rollouts", "List rollouts, filtered by state or model", problems=(401, 404, 422)
)
async def list_rollouts(
    session: SessionDep,
    principal: Viewer,
    params: RolloutPage,
    state: StateFilter = None,
    model_id: uuid.UUID | None = None,
) -> Page[RolloutSummary]:
    return await service.list_rollouts(
        session, principal=principal, params=params, state=state, model_id=model_id
    )


@rollouts.reading(
    "get_rollout", "Get one rollout with its waves' and devices' progress", problems=(401, 404)
)
async def get_rollout(rollout_id: uuid.UUID, session: SessionDep, principal: Viewer) -> Rollout:
    return await service.get_rollout(session, principal=principal, rollout_id=rollout_id)


@rollouts.reading(
    "get_rollout_history",
    "Every step of a rollout: waves started and passed, devices skipped or failed, abort",
    problems=(401, 404, 422),
    subpath="/history",
)
async def get_rollout_history(
    rollout_id: uuid.UUID, session: SessionDep, principal: Viewer, params: HistoryPage
) -> Page[RolloutEvent]:
    return await service.rollout_history(
        session, principal=principal, rollout_id=rollout_id, params=params
    )


ActionRoute = Callable[..., Awaitable[Rollout]]


def _action_route(action: service.RolloutAction) -> ActionRoute:
    async def route(rollout_id: uuid.UUID, session: SessionDep, principal: Viewer) -> Rollout:
        return await service.act(session, principal=principal, rollout_id=rollout_id, action=action)

    return route


_ACTIONS = {
    "pause": "Hold a running rollout (no new wave starts, its wave timeout stops counting)",
    "resume": "Move a paused rollout again (a wave the policy gate held is judged again)",
    "abort": "Stop a rollout and return its updated devices to the version they ran",
}
for _name, _summary in _ACTIONS.items():
    rollouts.acting(
        f"{_name}_rollout",
        _summary,
        problems=(401, 403, 404, 409),
        subpath=f"/{_name}",
        status_code=status.HTTP_202_ACCEPTED,
        response_model=Rollout,
    )(_action_route(service.ACTIONS[_name]))
