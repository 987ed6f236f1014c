"""HTTP routes of the workspace policy gate: thin, one service call each."""

from __future__ import annotations

from fastapi import APIRouter

from modelyard_common.auth import Admin, Viewer
from modelyard_common.db import SessionDep
from modelyard_common.history import HistoryEntryRead, HistoryPaging, history_page
from modelyard_common.pagination import Page
from modelyard_common.routes import Routes
from modelyard_registry.deps import AUTH_PROBLEMS, SettingsDep
from modelyard_registry.policy import service
from modelyard_registry.policy.schemas import PolicyRead, PolicyUpdate

router = APIRouter(prefix="/v1/policy", tags=["policy"])
policy = Routes(router)  # one policy per workspace: the collection is the item


@policy.reading(
    "get_policy", "The workspace's policy gate (enforce, warn or off)", problems=AUTH_PROBLEMS
)
async def get_policy(session: SessionDep, principal: Viewer, settings: SettingsDep) -> PolicyRead:
    return await service.get_policy(
        session, principal=principal, default_gate=settings.policy_default_gate
    )


@policy.route(
    "PUT",
    True,
    "set_policy",
    "Set the workspace's policy gate (admin); the deployer and gateway follow in seconds",
    problems=(*AUTH_PROBLEMS, 422),
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


@policy.listing(
    "list_policy_history",
    "Every change to the workspace's gate: who, when, old and new",
    problems=(*AUTH_PROBLEMS, 422),
    subpath="/history",
)
async def list_policy_history(
    session: SessionDep, principal: Viewer, params: HistoryPaging
) -> Page[HistoryEntryRead]:
    rows, cursor = await service.policy_history(session, principal=principal, params=params)
    return history_page(rows, cursor)
