"""Who may see and act on a model's versions and deployments, and the grants that say so.

A workspace admin may do everything. Anyone else needs a grant on the model (to their user or
to one of their roles): `viewer` sees versions and deployments and downloads artifacts,
`deployer` also deploys and operates deployments, `editor` also uploads and deletes versions and
manages grants. Without any grant the model's versions and deployments do not exist for the
caller (404, not 403), so ids cannot be probed.
"""

from __future__ import annotations

import uuid
from typing import Protocol, TypeVar

import httpx
from sqlalchemy import ColumnElement, true
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import InstrumentedAttribute

from modelyard_common.auth import Principal, Role
from modelyard_common.errors import ConflictError, ForbiddenError, NotFoundError
from modelyard_common.http import check_if_match, make_etag
from modelyard_common.pagination import Page, PageParams
from modelyard_common.row_views import view_of
from modelyard_deployer.access import repository
from modelyard_deployer.access.schemas import (
    AccessLevel,
    Grant,
    GrantCreate,
    GrantUpdate,
)
from modelyard_deployer.db import AccessGrant, add_unique
from modelyard_deployer.governance.models import get_visible_model

RANK = {AccessLevel.viewer: 1, AccessLevel.deployer: 2, AccessLevel.editor: 3}


def is_admin(principal: Principal) -> bool:
    """Return whether the principal is a workspace admin (sees and does everything)."""
    return principal.has_role(Role.admin)


async def rank_on(session: AsyncSession, principal: Principal, model_id: uuid.UUID) -> int:
    """Return the principal's highest access rank on a model (0: none, 3: editor or admin)."""
    if is_admin(principal):
        return RANK[AccessLevel.editor]
    levels = await repository.levels_of(session, principal, model_id)
    return max((RANK[AccessLevel(level)] for level in levels), default=0)


async def require_access(
    session: AsyncSession,
    principal: Principal,
    model_id: uuid.UUID,
    level: AccessLevel,
    *,
    not_found: str,
) -> None:
    """Raise 404 (`not_found`) without any access to the model, 403 below `level`."""
    rank = await rank_on(session, principal, model_id)
    if rank == 0:
        raise NotFoundError(not_found)
    if rank < RANK[level]:
        raise ForbiddenError(f"This needs the {level.value} grant on model {model_id}.")


async def require_model_access(
    session: AsyncSession,
    principal: Principal,
    model_id: uuid.UUID,
    level: AccessLevel = AccessLevel.viewer,
) -> None:
    """Raise 404 unless the principal may see the model, 403 below `level`."""
    await require_access(
        session,
        principal,
        model_id,
        level,
        not_found=f"No model {model_id} you may see in this workspace.",
    )


class OfModel(Protocol):
    """A row that belongs to one model (a version, a deployment)."""

    @property
    def model_id(self) -> uuid.UUID: ...


Row = TypeVar("Row", bound=OfModel)


async def require_row_access(
    session: AsyncSession,
    principal: Principal,
    row: Row | None,
    level: AccessLevel,
    *,
    missing: NotFoundError,
) -> Row:
    """Return `row` if the principal holds `level` on its model; raise `missing` (a 404) if not."""
    if row is None:
        raise missing
    await require_access(session, principal, row.model_id, level, not_found=str(missing))
    return row


def visible_models(
    principal: Principal, model_id_column: InstrumentedAttribute[uuid.UUID]
) -> ColumnElement[bool]:
    """Return the condition limiting rows to the models the principal may see."""
    if is_admin(principal):
        return true()
    return model_id_column.in_(repository.granted_model_ids(principal))


def to_schema(grant: AccessGrant) -> Grant:
    """Return the API view of a grant."""
    return view_of(Grant, grant, etag=make_etag(grant.revision))


async def _require_on_grants(
    session: AsyncSession, principal: Principal, model_id: uuid.UUID, level: AccessLevel
) -> None:
    """Raise 404 without any access to the model's grants, 403 below `level`."""
    not_found = f"No model {model_id} with access grants you may see."
    await require_access(session, principal, model_id, level, not_found=not_found)


async def list_grants(
    session: AsyncSession, *, principal: Principal, model_id: uuid.UUID, params: PageParams
) -> Page[Grant]:
    """Return one page of a model's grants (any grantee may read them)."""
    await _require_on_grants(session, principal, model_id, AccessLevel.viewer)
    rows, cursor = await repository.SORTING.page(
        session, repository.list_statement(workspace=principal.workspace, model_id=model_id), params
    )
    return Page[Grant](items=[to_schema(row) for row in rows], next_cursor=cursor)


async def authorize_grant_change(
    session: AsyncSession, *, principal: Principal, model_id: uuid.UUID
) -> None:
    """Raise 404/403 unless the principal manages the model's grants (before any replay)."""
    await _require_on_grants(session, principal, model_id, AccessLevel.editor)


async def create_grant(
    session: AsyncSession,
    *,
    http: httpx.AsyncClient,
    principal: Principal,
    model_id: uuid.UUID,
    body: GrantCreate,
    authorization: str | None,
) -> Grant:
    """Return a new grant on a model; 409 if the subject already has one."""
    await _require_on_grants(session, principal, model_id, AccessLevel.editor)
    await get_visible_model(
        session, http=http, principal=principal, model_id=model_id, authorization=authorization
    )
    existing = await repository.find(
        session, model_id=model_id, subject_type=body.subject_type, subject=body.subject
    )
    if existing is not None:
        raise ConflictError(
            f"The {body.subject_type.value} {body.subject!r} already has a grant on this model; "
            "change its level instead.",
            grant_id=str(existing.id),
        )
    grant = AccessGrant(
        workspace=principal.workspace,
        model_id=model_id,
        subject_type=body.subject_type.value,
        subject=body.subject,
        level=body.level.value,
        created_by=principal.sub,
    )
    await add_unique(session, grant, conflict="A concurrent request created the same grant.")
    await session.refresh(grant)
    return to_schema(grant)


async def _grant(
    session: AsyncSession,
    principal: Principal,
    model_id: uuid.UUID,
    grant_id: uuid.UUID,
    level: AccessLevel,
) -> AccessGrant:
    """Return a grant of a model the principal holds `level` on (404 without it, or no grant)."""
    await _require_on_grants(session, principal, model_id, level)
    grant = await repository.get(
        session, workspace=principal.workspace, model_id=model_id, grant_id=grant_id
    )
    if grant is None:
        raise NotFoundError(f"No grant {grant_id} on model {model_id}.")
    return grant


async def get_grant(
    session: AsyncSession, *, principal: Principal, model_id: uuid.UUID, grant_id: uuid.UUID
) -> Grant:
    """Return one grant of a model."""
    grant = await _grant(session, principal, model_id, grant_id, AccessLevel.viewer)
    return to_schema(grant)


async def update_grant(
    session: AsyncSession,
    *,
    principal: Principal,
    model_id: uuid.UUID,
    grant_id: uuid.UUID,
    body: GrantUpdate,
    if_match: str | None,
) -> Grant:
    """Return the grant after changing its level (If-Match must name its current ETag)."""
    grant = await _grant(session, principal, model_id, grant_id, AccessLevel.editor)
    check_if_match(if_match, grant.revision)
    grant.level = body.level.value
    grant.revision += 1
    await session.flush()
    await session.refresh(grant)
    return to_schema(grant)


async def delete_grant(
    session: AsyncSession, *, principal: Principal, model_id: uuid.UUID, grant_id: uuid.UUID
) -> None:
    """Remove a grant."""
    grant = await _grant(session, principal, model_id, grant_id, AccessLevel.editor)
    await session.delete(grant)
    await session.flush()
