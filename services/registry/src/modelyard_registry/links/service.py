"""The rules about links: both ends exist and are active, one link per pair, audited."""

from __future__ import annotations

import uuid

from sqlalchemy.ext.asyncio import AsyncSession

from modelyard_common.auth import Principal
from modelyard_common.errors import ConflictError, found
from modelyard_common.http import check_if_match
from modelyard_common.row_views import view_of
from modelyard_registry.db import AIModel, AISystem, SystemModelLink
from modelyard_registry.history.service import (
    authorship,
    emit,
    flush_unique,
    new_revision,
    record_change,
)
from modelyard_registry.inventory.service import RESOURCES, get_item
from modelyard_registry.links import repository
from modelyard_registry.links.schemas import LinkCreate, LinkRead, LinkUpdate


def to_read(link: SystemModelLink, model: AIModel) -> LinkRead:
    """Return the API view of a link, with what it shows of its model."""
    return view_of(
        LinkRead,
        link,
        model_name=model.name,
        learning_type=model.learning_type,
        model_archived=model.archived,
    )


async def _audit(
    session: AsyncSession,
    *,
    principal: Principal,
    read: LinkRead,
    action: str,
    old: str | None,
    new: str | None,
) -> LinkRead:
    """Return `read` once both ends' histories and a `registry.link.<action>` event record it."""
    system_id = read.system_id
    change = {"description_of_use": {"old": old, "new": new}}
    model_resource, system_resource = RESOURCES[AIModel], RESOURCES[AISystem]
    await record_change(
        session,
        principal=principal,
        resource_type=system_resource,
        resource_id=system_id,
        action=f"model_{action}",
        changes={"model_id": {"old": None, "new": str(read.model_id)}, **change},
    )
    await record_change(
        session,
        principal=principal,
        resource_type=model_resource,
        resource_id=read.model_id,
        action=f"system_{action}",
        changes={"system_id": {"old": None, "new": str(system_id)}, **change},
    )
    await emit(
        session,
        principal=principal,
        event_type=f"registry.link.{action}",
        subject=system_id,
        data=read,
    )
    return read


async def attach(
    session: AsyncSession, *, principal: Principal, system_id: uuid.UUID, body: LinkCreate
) -> LinkRead:
    """Return the new link; 409 when either end is archived or the pair is linked already."""
    system = await get_item(
        session, AISystem, principal=principal, item_id=system_id, for_update=True
    )
    model = await get_item(
        session, AIModel, principal=principal, item_id=body.model_id, for_update=True
    )
    if system.archived_at is not None:
        raise ConflictError("The system is archived; unarchive it before linking models.")
    if model.archived_at is not None:
        raise ConflictError("The model is archived; unarchive it before linking it.")
    if await repository.get(
        session, workspace=principal.workspace, system_id=system_id, model_id=model.id
    ):
        raise ConflictError("This model is already linked to this system; update the link.")
    link = SystemModelLink(
        system_id=system.id,
        model_id=model.id,
        description_of_use=body.description_of_use,
        **authorship(principal),
    )
    session.add(link)
    await flush_unique(session, "This model is already linked to this system.")
    await session.refresh(link)
    return await _audit(
        session,
        principal=principal,
        read=to_read(link, model),
        action="linked",
        old=None,
        new=link.description_of_use,
    )


async def _get_link(
    session: AsyncSession,
    *,
    principal: Principal,
    system_id: uuid.UUID,
    model_id: uuid.UUID,
    for_update: bool = False,
) -> tuple[SystemModelLink, AIModel]:
    link = await repository.get(
        session,
        workspace=principal.workspace,
        system_id=system_id,
        model_id=model_id,
        for_update=for_update,
    )
    return found(link, f"Model {model_id} is not linked to system {system_id}.")


async def update(
    session: AsyncSession,
    *,
    principal: Principal,
    system_id: uuid.UUID,
    model_id: uuid.UUID,
    body: LinkUpdate,
    if_match: str | None,
) -> LinkRead:
    """Return the link with its new description of use; 412 when `if_match` is stale."""
    link, model = await _get_link(
        session, principal=principal, system_id=system_id, model_id=model_id, for_update=True
    )
    check_if_match(if_match, link.revision)
    if link.description_of_use == body.description_of_use:
        return to_read(link, model)
    old = link.description_of_use
    link.description_of_use = body.description_of_use
    new_revision(link, principal)
    await session.flush()
    return await _audit(
        session,
        principal=principal,
        read=to_read(link, model),
        action="updated",
        old=old,
        new=link.description_of_use,
    )


async def detach(
    session: AsyncSession, *, principal: Principal, system_id: uuid.UUID, model_id: uuid.UUID
) -> None:
    """Remove a link, recording it on both ends."""
    link, model = await _get_link(
        session, principal=principal, system_id=system_id, model_id=model_id, for_update=True
    )
    await _remove(session, principal=principal, link=link, model=model)


async def _remove(
    session: AsyncSession, *, principal: Principal, link: SystemModelLink, model: AIModel
) -> None:
    read = to_read(link, model)
    await session.delete(link)
    await session.flush()
    await _audit(
        session,
        principal=principal,
        read=read,
        action="unlinked",
        old=link.description_of_use,
        new=None,
    )


async def detach_all(session: AsyncSession, *, principal: Principal, system: AISystem) -> None:
    """Remove every link of a system (before the system itself is deleted)."""
    for link, model in await repository.models_of_system(
        session, workspace=principal.workspace, system_id=system.id
    ):
        await _remove(session, principal=principal, link=link, model=model)


async def list_models_of_system(
    session: AsyncSession, *, principal: Principal, system_id: uuid.UUID
) -> list[LinkRead]:
    """Return the models a system uses, each with its description of use."""
    await get_item(session, AISystem, principal=principal, item_id=system_id)
    return [
        to_read(link, model)
        for link, model in await repository.models_of_system(
            session, workspace=principal.workspace, system_id=system_id
        )
    ]
