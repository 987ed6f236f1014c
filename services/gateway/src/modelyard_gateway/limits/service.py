"""Rules about the workspace's ceiling: one per workspace, changed by admins with If-Match."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy.ext.asyncio import AsyncSession

from modelyard_common.auth import Principal
from modelyard_common.http import check_if_match, make_etag
from modelyard_gateway.db import WorkspaceLimits, announce_config_change
from modelyard_gateway.limits import repository
from modelyard_gateway.limits.schemas import LimitValues, WorkspaceLimitsRead, WorkspaceLimitsUpdate


def _view(workspace: str, row: WorkspaceLimits | None) -> WorkspaceLimitsRead:
    if row is None:
        return WorkspaceLimitsRead(
            workspace=workspace, updated_by=None, updated_at=None, etag=make_etag(0)
        )
    return WorkspaceLimitsRead(
        workspace=workspace,
        **{name: getattr(row, name) for name in LimitValues.model_fields},
        updated_by=row.updated_by,
        updated_at=row.updated_at,
        etag=make_etag(row.revision),
    )


async def get_limits(session: AsyncSession, *, principal: Principal) -> WorkspaceLimitsRead:
    """Return the workspace's ceiling (all null, ETag "0", when it was never set)."""
    row = await repository.workspace_limits(session, workspace=principal.workspace)
    return _view(principal.workspace, row)


async def update_limits(
    session: AsyncSession,
    *,
    principal: Principal,
    body: WorkspaceLimitsUpdate,
    if_match: str | None,
) -> WorkspaceLimitsRead:
    """Return the ceiling after changing the given fields; every replica applies it at once."""
    row = await repository.workspace_limits(session, workspace=principal.workspace, lock=True)
    check_if_match(if_match, row.revision if row is not None else 0)
    if row is None:
        row = WorkspaceLimits(workspace=principal.workspace, revision=0)
        session.add(row)
    for name in body.model_fields_set:
        setattr(row, name, getattr(body, name))
    row.revision += 1
    row.updated_by = principal.sub
    row.updated_at = datetime.now(UTC)
    await session.flush()
    await announce_config_change(session)
    return _view(principal.workspace, row)
