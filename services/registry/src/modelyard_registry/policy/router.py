"""HTTP routes of the workspace policy gate: thin, one service call each."""

from __future__ import annotations

from fastapi import APIRouter

from modelyard_common.auth import Admin, Viewer
from modelyard_common.db import SessionDep
from modelyard_common.errors import problem_responses
from modelyard_common.pagination import Page
from modelyard_registry.deps import SettingsDep
from modelyard_registry.history.router import HistoryPage, history_page
from modelyard_registry.history.schemas import HistoryEntryRead
from modelyard_registry.policy import service
from modelyard_registry.policy.schemas import PolicyRead, PolicyUpdate

router = APIRouter(prefix="/v1/policy", tags=["policy"])


@router.get(
    "",
    operation_id="get_policy",
    summary="The workspace's policy gate (enforce, warn or off)",
    responses=problem_responses(401, 403),
)
async def get_policy(session: SessionDep, principal: Viewer, settings: SettingsDep) -> PolicyRead:
    return await service.get_policy(
        session, principal=principal, default_gate=settings.policy_default_gate
    )


@router.put(
    "",
    operation_id="set_policy",
    summary="Set the workspace's policy gate (admin); the deployer and gateway follow in seconds",
    responses=problem_responses(401, 403, 422),
)
async def set_policy(
    session: SessionDep, principal: Admin, settings: SettingsDep, body: PolicyUpdate
) -> PolicyRead:
    return await service.set_policy(
        session,
        principal=principal,
        body=body,
        default_gate=settings.policy_default_gate,
    )


@router.get(
    "/history",
    operation_id="list_policy_history",
    summary="Every change to the workspace's gate: who, when, old and new",
    responses=problem_responses(401, 403, 422),
)
async def list_policy_history(
    session: SessionDep, principal: Viewer, params: HistoryPage
) -> Page[HistoryEntryRead]:
    rows, cursor = await service.policy_history(session, principal=principal, params=params)
    return history_page(rows, cursor)
