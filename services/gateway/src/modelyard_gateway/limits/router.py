"""Admin routes of the workspace's ceiling (JWT: viewers read; admins change it)."""

from __future__ import annotations

from fastapi import APIRouter, Response

from modelyard_common.auth import Admin, Viewer
from modelyard_common.db import SessionDep
from modelyard_common.http import IfMatch
from modelyard_common.routes import Routes, with_etag
from modelyard_gateway.limits import service
from modelyard_gateway.limits.schemas import WorkspaceLimitsRead, WorkspaceLimitsUpdate

router = APIRouter(prefix="/v1/limits", tags=["limits"])
ceiling = Routes(router)


@ceiling.reading(
    "get_workspace_limits",
    "Get the workspace's ceiling on requests, tokens and token budgets",
    problems=(401, 403),
)
async def get_workspace_limits(
    session: SessionDep, principal: Viewer, response: Response
) -> WorkspaceLimitsRead:
    """Return the ceiling every key of the workspace shares; its ETag is in the header."""
    return with_etag(response, await service.get_limits(session, principal=principal))


@ceiling.changing(
    "update_workspace_limits",
    'Change the workspace\'s ceiling (If-Match required; "0" before the first change)',
    problems=(401, 403, 412, 422, 428),
)
async def update_workspace_limits(
    session: SessionDep,
    principal: Admin,
    body: WorkspaceLimitsUpdate,
    response: Response,
    if_match: IfMatch = None,
) -> WorkspaceLimitsRead:
    """Change the given limits (null removes one); every replica applies them within a second."""
    updated = await service.update_limits(
        session, principal=principal, body=body, if_match=if_match
    )
    return with_etag(response, updated)
