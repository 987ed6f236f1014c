"""The rules about AI models: uniqueness, optimistic concurrency, archive, guarded delete."""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from modelyard_common.auth import Principal
from modelyard_common.db import utcnow
from modelyard_common.errors import ConflictError, NotFoundError
from modelyard_common.http import check_if_match, make_etag
from modelyard_common.pagination import PageParams
from modelyard_registry.ai_models import repository
from modelyard_registry.ai_models.schemas import (
    AIModelCreate,
    AIModelRead,
    AIModelUpdate,
    ModelSystemLinkRead,
)
from modelyard_registry.approvals.schemas import (
    REAPPROVAL_FIELDS,
    ApprovalConditions,
    ApprovalState,
)
from modelyard_registry.db import AIModel
from modelyard_registry.history.service import diff, flush_unique, record_change, save_revision

RESOURCE = "model"
# A change of what the model is sends these back to draft: a new review is needed.
VOIDABLE = {ApprovalState.in_review, ApprovalState.approved, ApprovalState.restricted}


def reset_approval(model: AIModel) -> None:
    """Put the model back to `draft`, forgetting the request and decision it had."""
    model.approval = ApprovalState.draft
    model.approval_conditions = None
    model.approval_requested_by = model.approval_requested_at = None
    model.approval_request_comment = None
    model.approval_decided_by = model.approval_decided_at = None
    model.approval_decision_comment = None


def to_read(model: AIModel) -> AIModelRead:
    """Return the API view of a model row."""
    return AIModelRead(
        id=model.id,
        workspace=model.workspace,
        name=model.name,
        description=model.description,
        learning_type=model.learning_type,  # type: ignore[arg-type]
        functionality=model.functionality,
        foundations=model.foundations,
        provider=model.provider,
        tags=list(model.tags),
        properties=model.properties,
        archived=model.archived_at is not None,
        archived_at=model.archived_at,
        approval=ApprovalState(model.approval),
        approval_conditions=(
            ApprovalConditions.model_validate(model.approval_conditions)
            if model.approval_conditions
            else None
        ),
        approval_comment=model.approval_decision_comment,
        created_at=model.created_at,
        created_by=model.created_by,
        updated_at=model.updated_at,
        updated_by=model.updated_by,
        etag=make_etag(model.revision),
    )


def _snapshot(model: AIModel) -> dict[str, Any]:
    return to_read(model).model_dump(
        mode="json",
        include={
            "name",
            "description",
            "learning_type",
            "functionality",
            "foundations",
            "provider",
            "tags",
            "properties",
            "archived",
            "approval",
            "approval_conditions",
        },
    )


async def get_model(
    session: AsyncSession, *, principal: Principal, model_id: uuid.UUID, for_update: bool = False
) -> AIModel:
    """Return the principal's workspace model, or raise 404 (also for other workspaces' ids)."""
    model = await repository.get(
        session, workspace=principal.workspace, model_id=model_id, for_update=for_update
    )
    if model is None:
        raise NotFoundError(f"No model {model_id} in this workspace.")
    return model


async def _ensure_name_free(
    session: AsyncSession, *, principal: Principal, name: str, exclude_id: uuid.UUID | None = None
) -> None:
    if await repository.name_taken(
        session, workspace=principal.workspace, name=name, exclude_id=exclude_id
    ):
        raise ConflictError(f"A model named {name!r} already exists in this workspace.")


async def create_model(
    session: AsyncSession, *, principal: Principal, data: AIModelCreate
) -> AIModelRead:
    """Return the newly created model; records history and `registry.model.created`."""
    await _ensure_name_free(session, principal=principal, name=data.name)
    model = AIModel(
        workspace=principal.workspace,
        created_by=principal.sub,
        updated_by=principal.sub,
        **data.model_dump(mode="json"),
    )
    session.add(model)
    await flush_unique(session, f"A model named {data.name!r} already exists in this workspace.")
    await session.refresh(model)
    read = to_read(model)
    await record_change(
        session,
        principal=principal,
        resource_type=RESOURCE,
        resource_id=model.id,
        action="created",
        changes=diff({}, _snapshot(model)),
        event_data=read,
    )
    return read


async def update_model(
    session: AsyncSession,
    *,
    principal: Principal,
    model_id: uuid.UUID,
    data: AIModelUpdate,
    if_match: str | None,
) -> AIModelRead:
    """Return the model after applying the set fields; 412 when `if_match` is stale."""
    model = await get_model(session, principal=principal, model_id=model_id, for_update=True)
    check_if_match(if_match, model.revision)
    changes = data.model_dump(mode="json", exclude_unset=True, exclude_none=True)
    if "name" in changes:
        await _ensure_name_free(
            session, principal=principal, name=changes["name"], exclude_id=model.id
        )
    before = _snapshot(model)
    for field, value in changes.items():
        setattr(model, field, value)
    delta = diff(before, _snapshot(model))
    if not delta:
        return to_read(model)
    voiding = [f for f in REAPPROVAL_FIELDS if f in delta]
    if voiding and model.approval in VOIDABLE:
        reset_approval(model)
        delta = diff(before, _snapshot(model))
        delta["reapproval_required"] = {"old": None, "new": voiding}
    return await save_revision(
        session,
        principal=principal,
        row=model,
        resource_type=RESOURCE,
        action="updated",
        delta=delta,
        to_read=to_read,
    )


async def set_archived(
    session: AsyncSession, *, principal: Principal, model_id: uuid.UUID, archived: bool
) -> AIModelRead:
    """Return the model archived (soft-deleted) or restored; repeating it changes nothing."""
    model = await get_model(session, principal=principal, model_id=model_id, for_update=True)
    if (model.archived_at is not None) == archived:
        return to_read(model)
    before = _snapshot(model)
    model.archived_at = utcnow() if archived else None
    return await save_revision(
        session,
        principal=principal,
        row=model,
        resource_type=RESOURCE,
        action="archived" if archived else "unarchived",
        delta=diff(before, _snapshot(model)),
        to_read=to_read,
    )


async def delete_model(session: AsyncSession, *, principal: Principal, model_id: uuid.UUID) -> None:
    """Hard-delete an unlinked model; 409 naming the systems that still use it."""
    model = await get_model(session, principal=principal, model_id=model_id, for_update=True)
    links = await repository.systems_using(
        session, workspace=principal.workspace, model_id=model_id
    )
    if links:
        names = [system.name for _, system in links]
        raise ConflictError(
            f"The model is used by {len(names)} system(s): {', '.join(names)}. "
            "Unlink it first, or archive it instead.",
            systems=[{"id": str(system.id), "name": system.name} for _, system in links],
        )
    read = to_read(model)
    await session.delete(model)
    await session.flush()
    await record_change(
        session,
        principal=principal,
        resource_type=RESOURCE,
        resource_id=model_id,
        action="deleted",
        changes=diff(_snapshot(model), {}),
        event_data=read,
    )


async def list_models(
    session: AsyncSession,
    *,
    principal: Principal,
    filters: repository.ModelFilters,
    params: PageParams,
) -> tuple[list[AIModelRead], str | None]:
    """Return one page of the workspace's models and the next cursor."""
    rows, cursor = await repository.list_page(
        session, workspace=principal.workspace, filters=filters, params=params
    )
    return [to_read(m) for m in rows], cursor


async def list_systems_of_model(
    session: AsyncSession, *, principal: Principal, model_id: uuid.UUID
) -> list[ModelSystemLinkRead]:
    """Return every system that uses the model, with its description of use."""
    await get_model(session, principal=principal, model_id=model_id)
    return [
        ModelSystemLinkRead(
            system_id=system.id,
            system_name=system.name,
            risk_level=system.risk_level,
            status=system.status,
            description_of_use=link.description_of_use,
            created_at=link.created_at,
            updated_at=link.updated_at,
        )
        for link, system in await repository.systems_using(
            session, workspace=principal.workspace, model_id=model_id
        )
    ]
