"""Rules about registry models: they must exist, be neither archived nor deleted, and (under the
workspace's policy gate) be approved for what is asked of them.

The deployer knows models and their approvals from `registry.model.*` events (its projection).
When it has never heard of a model it asks the registry with the caller's token. While the
registry is down the projection's last state holds, so the gate keeps working; a model it never
heard of then cannot be proven approved: `enforce` refuses with 503, `warn` lets it through with
the warning "of unknown approval".
"""

from __future__ import annotations

import logging
import uuid
from datetime import datetime
from typing import Any

import httpx
from pydantic import BaseModel, ConfigDict, ValidationError
from sqlalchemy.ext.asyncio import AsyncSession

from modelyard_common.auth import Principal
from modelyard_common.db import utcnow
from modelyard_common.errors import ConflictError, NotFoundError, ServiceUnavailableError
from modelyard_common.events import CloudEvent
from modelyard_common.governance import (
    POLICY_UPDATED,
    ApprovalState,
    Governance,
    ModelApprovalEvent,
    Standing,
    fetch_registry_model,
)
from modelyard_deployer.db import ModelApproval, RegistryModel, WorkspacePolicy
from modelyard_deployer.registry_models import repository
from modelyard_deployer.settings import DeployerSettings

log = logging.getLogger("modelyard.deployer.registry")

MODEL_EVENT_PREFIX = "registry.model."
DELETED = "registry.model.deleted"


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
    http: httpx.AsyncClient, *, model_id: uuid.UUID, authorization: str | None
) -> RegistryModelResource | None:
    """Return the model as the registry shows it to the caller, or None when it has none."""
    body = await fetch_registry_model(http, model_id=model_id, authorization=authorization)
    if body is None:
        return None
    try:
        return RegistryModelResource.model_validate(body)
    except ValidationError as exc:
        raise ServiceUnavailableError("The registry sent an unreadable model.") from exc


def governance(settings: DeployerSettings) -> Governance:
    """Return the deployer's view of the policy gate (its projection tables)."""
    return Governance(ModelApproval, WorkspacePolicy, default_gate=settings.policy_default_gate)


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
        resource = await fetch_from_registry(http, model_id=model_id, authorization=authorization)
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


async def require_open_model(
    session: AsyncSession,
    *,
    http: httpx.AsyncClient,
    principal: Principal,
    model_id: uuid.UUID,
    authorization: str | None,
) -> RegistryModel:
    """Return the model if it can get new versions and deployments (exists, not archived)."""
    model = await get_visible_model(
        session, http=http, principal=principal, model_id=model_id, authorization=authorization
    )
    if model.archived:
        raise ConflictError(
            f"Model {model_id} is archived: it gets no new versions or deployments. "
            "Unarchive it in the registry first."
        )
    return model


async def model_standing(
    session: AsyncSession,
    *,
    http: httpx.AsyncClient,
    settings: DeployerSettings,
    model: RegistryModel,
    authorization: str | None,
    fresh: bool = False,
) -> Standing:
    """Return the model's approval under its workspace's gate.

    From the projection; the registry is asked (with the caller's token) when the model's
    approval is unknown here, or when `fresh` (to confirm a refusal: an approval made a moment
    ago may not have arrived yet). If it cannot be asked, the projection's view stands.
    """
    gate = governance(settings)
    standing = await gate.standing(session, workspace=model.workspace, model_id=model.id)
    if (standing.approval is not None and not fresh) or standing.gate.value == "off":
        return standing
    try:
        resource = await fetch_from_registry(http, model_id=model.id, authorization=authorization)
    except ServiceUnavailableError as exc:
        log.warning("approval of model %s unknown: %s", model.id, exc.detail)
        return standing
    if resource is None or resource.approval is None:
        return standing
    await gate.record_model(
        session,
        ModelApprovalEvent.model_validate({**resource.model_dump(), "workspace": model.workspace}),
        source_time=utcnow(),
    )
    return await gate.standing(session, workspace=model.workspace, model_id=model.id)


async def hold_for_judgement(session: AsyncSession, *, workspace: str, model_id: uuid.UUID) -> None:
    """Keep the model's approval and the workspace's gate from changing until this commits.

    A request that judges a run takes these (shared) before it reads the standing and before
    any row lock; the consumer applying an approval or gate change takes them exclusively
    first. So either the change commits first and the request judges on it, or the request's
    deployments are committed before the consumer looks for deployments let run since the
    change (`enforce_standing`): none slips between the two.
    """
    await repository.lock_governance(
        session,
        [
            repository.governance_lock_key(workspace=workspace),
            repository.governance_lock_key(workspace=workspace, model_id=model_id),
        ],
        shared=True,
    )


async def hold_for_change(session: AsyncSession, event: CloudEvent) -> None:
    """Wait for the requests judging on what `event` changes, and hold them off meanwhile."""
    workspace = event.data.get("workspace")
    if not isinstance(workspace, str):
        return
    if event.type == POLICY_UPDATED:
        key = repository.governance_lock_key(workspace=workspace)
    else:
        try:
            model_id = uuid.UUID(str(event.data.get("id")))
        except ValueError:
            return
        key = repository.governance_lock_key(workspace=workspace, model_id=model_id)
    await repository.lock_governance(session, [key], shared=False)


async def restricted_anew(
    session: AsyncSession, gate: Governance, event: CloudEvent
) -> Standing | None:
    """Return the model's standing when `event` was just applied and leaves it `restricted`.

    `Governance.apply_event` reports approval changes only; a restricted model whose conditions
    change (other labels, other groups) must be judged again as well.
    """
    if not event.type.startswith(MODEL_EVENT_PREFIX):
        return None
    try:
        model = ModelApprovalEvent.model_validate(event.data)
    except ValidationError:
        return None
    if await repository.approval_time(session, model.id) != event.time:
        return None  # an older event than the projection holds, or none applied
    standing = await gate.standing(session, workspace=model.workspace, model_id=model.id)
    return standing if standing.approval is ApprovalState.restricted else None


async def policy_time(session: AsyncSession, workspace: str) -> datetime | None:
    """Return the time of the workspace's gate as projected (None: it never chose one)."""
    return await repository.policy_time(session, workspace)


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
        deleted=event.type == DELETED,
        source_time=event.time,
    )
