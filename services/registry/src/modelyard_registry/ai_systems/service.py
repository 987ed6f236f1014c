"""The rules about AI systems: uniqueness, optimistic concurrency, archive, delete."""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from modelyard_common.auth import Principal
from modelyard_common.db import utcnow
from modelyard_common.errors import ConflictError, NotFoundError
from modelyard_common.http import check_if_match, make_etag
from modelyard_common.pagination import PageParams
from modelyard_registry.ai_systems import repository
from modelyard_registry.ai_systems.schemas import AISystemCreate, AISystemRead, AISystemUpdate
from modelyard_registry.db import AISystem
from modelyard_registry.history.service import diff, flush_unique, record_change, save_revision
from modelyard_registry.obligations import service as obligations

RESOURCE = "system"
_TRACKED = {
    "name",
    "description",
    "purpose",
    "owner",
    "status",
    "risk_level",
    "risk_justification",
    "ai_act_role",
    "tags",
    "archived",
}


def to_read(system: AISystem) -> AISystemRead:
    """Return the API view of a system row."""
    return AISystemRead(
        id=system.id,
        workspace=system.workspace,
        name=system.name,
        description=system.description,
        purpose=system.purpose,
        owner=system.owner,
        status=system.status,  # type: ignore[arg-type]
        risk_level=system.risk_level,  # type: ignore[arg-type]
        risk_justification=system.risk_justification,
        ai_act_role=system.ai_act_role,  # type: ignore[arg-type]
        tags=list(system.tags),
        archived=system.archived_at is not None,
        archived_at=system.archived_at,
        created_at=system.created_at,
        created_by=system.created_by,
        updated_at=system.updated_at,
        updated_by=system.updated_by,
        etag=make_etag(system.revision),
    )


def _snapshot(system: AISystem) -> dict[str, Any]:
    return to_read(system).model_dump(mode="json", include=_TRACKED)


async def get_system(
    session: AsyncSession,
    *,
    principal: Principal,
    system_id: uuid.UUID,
    for_update: bool = False,
) -> AISystem:
    """Return the principal's workspace system, or raise 404 (also for other workspaces' ids)."""
    system = await repository.get(
        session, workspace=principal.workspace, system_id=system_id, for_update=for_update
    )
    if system is None:
        raise NotFoundError(f"No system {system_id} in this workspace.")
    return system


async def _ensure_name_free(
    session: AsyncSession, *, principal: Principal, name: str, exclude_id: uuid.UUID | None = None
) -> None:
    if await repository.name_taken(
        session, workspace=principal.workspace, name=name, exclude_id=exclude_id
    ):
        raise ConflictError(f"A system named {name!r} already exists in this workspace.")


async def create_system(
    session: AsyncSession, *, principal: Principal, data: AISystemCreate
) -> AISystemRead:
    """Return the newly created system; records history and `registry.system.created`."""
    await _ensure_name_free(session, principal=principal, name=data.name)
    # A new system has no obligation done yet: a high-risk one starts outside `in_use`.
    await obligations.ensure_may_be_in_use(
        session,
        system=AISystem(),
        status=data.status,
        risk_level=data.risk_level,
        ai_act_role=data.ai_act_role,
    )
    system = AISystem(
        workspace=principal.workspace,
        created_by=principal.sub,
        updated_by=principal.sub,
        **data.model_dump(mode="json"),
    )
    session.add(system)
    await flush_unique(session, f"A system named {data.name!r} already exists in this workspace.")
    await session.refresh(system)
    read = to_read(system)
    await record_change(
        session,
        principal=principal,
        resource_type=RESOURCE,
        resource_id=system.id,
        action="created",
        changes=diff({}, _snapshot(system)),
        event_data=read,
    )
    return read


async def update_system(
    session: AsyncSession,
    *,
    principal: Principal,
    system_id: uuid.UUID,
    data: AISystemUpdate,
    if_match: str | None,
) -> AISystemRead:
    """Return the system after applying the set fields; 412 when `if_match` is stale."""
    system = await get_system(session, principal=principal, system_id=system_id, for_update=True)
    check_if_match(if_match, system.revision)
    changes = data.model_dump(mode="json", exclude_unset=True, exclude_none=True)
    if "name" in changes:
        await _ensure_name_free(
            session, principal=principal, name=changes["name"], exclude_id=system.id
        )
    before = _snapshot(system)
    for field, value in changes.items():
        setattr(system, field, value)
    delta = diff(before, _snapshot(system))
    if not delta:
        return to_read(system)
    if {"status", "risk_level", "ai_act_role"} & delta.keys():
        await obligations.ensure_may_be_in_use(
            session,
            system=system,
            status=system.status,
            risk_level=system.risk_level,
            ai_act_role=system.ai_act_role,
        )
    return await save_revision(
        session,
        principal=principal,
        row=system,
        resource_type=RESOURCE,
        action="updated",
        delta=delta,
        to_read=to_read,
    )


async def set_archived(
    session: AsyncSession, *, principal: Principal, system_id: uuid.UUID, archived: bool
) -> AISystemRead:
    """Return the system archived or restored; repeating it changes nothing."""
    system = await get_system(session, principal=principal, system_id=system_id, for_update=True)
    if (system.archived_at is not None) == archived:
        return to_read(system)
    before = _snapshot(system)
    system.archived_at = utcnow() if archived else None
    return await save_revision(
        session,
        principal=principal,
        row=system,
        resource_type=RESOURCE,
        action="archived" if archived else "unarchived",
        delta=diff(before, _snapshot(system)),
        to_read=to_read,
    )


async def delete_system(
    session: AsyncSession, *, principal: Principal, system_id: uuid.UUID
) -> None:
    """Delete a system and its links for good, recording each removed link."""
    from modelyard_registry.links import service as links

    system = await get_system(session, principal=principal, system_id=system_id, for_update=True)
    await links.detach_all(session, principal=principal, system=system)
    read = to_read(system)
    await session.delete(system)
    await session.flush()
    await record_change(
        session,
        principal=principal,
        resource_type=RESOURCE,
        resource_id=system_id,
        action="deleted",
        changes=diff(_snapshot(system), {}),
        event_data=read,
    )


async def list_systems(
    session: AsyncSession,
    *,
    principal: Principal,
    filters: repository.SystemFilters,
    params: PageParams,
) -> tuple[list[AISystemRead], str | None]:
    """Return one page of the workspace's systems and the next cursor."""
    rows, cursor = await repository.list_page(
        session, workspace=principal.workspace, filters=filters, params=params
    )
    return [to_read(s) for s in rows], cursor
