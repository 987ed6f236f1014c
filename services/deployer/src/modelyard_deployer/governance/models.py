"""The registry models the deployer knows: they must exist and be neither archived nor deleted.

The deployer knows models from `registry.model.*` events (its projection). When it has never
heard of a model it asks the registry with the caller's token, through the service's one client
of the registry, and records the answer.
"""

from __future__ import annotations

import logging
import uuid
from typing import Any

import httpx
from pydantic import BaseModel, ConfigDict, ValidationError
from sqlalchemy.ext.asyncio import AsyncSession

from modelyard_common.auth import Principal
from modelyard_common.db import utcnow
from modelyard_common.errors import ConflictError, NotFoundError, ServiceUnavailableError
from modelyard_common.events import CloudEvent
from modelyard_common.governance import MODEL_DELETED, MODEL_EVENT_PREFIX, fetch_registry_model
from modelyard_deployer.db import RegistryModel
from modelyard_deployer.governance import repository

log = logging.getLogger("modelyard.deployer.registry")


class RegistryModelResource(BaseModel):
    """The fields of a registry model the deployer relies on."""

    model_config = ConfigDict(extra="ignore")

    id: uuid.UUID
    name: str
    archived: bool = False
    workspace: str | None = None
    approval: str | None = None
    approval_conditions: dict[str, Any] | None = None
    approval_comment: str | None = None
    updated_by: str | None = None


def _model_not_found(model_id: uuid.UUID) -> NotFoundError:
    return NotFoundError(f"No model {model_id} in this workspace.")


async def fetch_from_registry(
    http: httpx.AsyncClient, *, model_id: uuid.UUID, workspace: str, authorization: str | None
) -> RegistryModelResource | None:
    """Return the model as the registry shows it to the caller, or None when it has none."""
    body = await fetch_registry_model(
        http, model_id=model_id, workspace=workspace, authorization=authorization
    )
    if body is None:
        return None
    try:
        return RegistryModelResource.model_validate(body)
    except ValidationError as exc:
        raise ServiceUnavailableError("The registry sent an unreadable model.") from exc


async def get_visible_model(
    session: AsyncSession,
    *,
    http: httpx.AsyncClient,
    principal: Principal,
    model_id: uuid.UUID,
    authorization: str | None,
) -> RegistryModel:
    """Return the model if it exists in the caller's workspace (projection first, then HTTP)."""
    model = await repository.get(session, model_id)
    if model is None:
        resource = await fetch_from_registry(
            http, model_id=model_id, workspace=principal.workspace, authorization=authorization
        )
        if resource is None or resource.id != model_id:
            raise _model_not_found(model_id)
        await repository.upsert(
            session,
            model_id=model_id,
            # The registry answered with the caller's token, so the model is in their workspace.
            workspace=resource.workspace or principal.workspace,
            name=resource.name,
            archived=resource.archived,
            deleted=False,
            source_time=utcnow(),
        )
        await session.flush()
        model = await repository.get(session, model_id)
        assert model is not None
        await session.refresh(model)
    if model.workspace != principal.workspace or model.deleted:
        raise _model_not_found(model_id)
    return model


def require_open(model: RegistryModel) -> RegistryModel:
    """Return the model if it can get new versions and deployments (409 while it is archived)."""
    if model.archived:
        raise ConflictError(
            f"Model {model.id} is archived: it gets no new versions or deployments. "
            "Unarchive it in the registry first."
        )
    return model


async def apply_registry_event(session: AsyncSession, event: CloudEvent) -> None:
    """Update the model projection from one `registry.model.*` event."""
    if not event.type.startswith(MODEL_EVENT_PREFIX):
        return
    data: dict[str, Any] = event.data
    try:
        resource = RegistryModelResource.model_validate(data)
    except ValidationError:
        log.warning("ignoring %s event %s without a readable model", event.type, event.id)
        return
    if resource.workspace is None:
        log.warning("ignoring %s event %s without a workspace", event.type, event.id)
        return
    await repository.upsert(
        session,
        model_id=resource.id,
        workspace=resource.workspace,
        name=resource.name,
        archived=resource.archived or event.type == "registry.model.archived",
        deleted=event.type == MODEL_DELETED,
        source_time=event.time,
    )
