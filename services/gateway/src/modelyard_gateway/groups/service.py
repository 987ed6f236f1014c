"""Rules about model groups: unique names, members from the same workspace, ETags, and the
policy gate on the registry model a group follows (no binding to an unapproved model)."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import UTC, datetime

from sqlalchemy.ext.asyncio import AsyncSession

from modelyard_common.auth import Principal
from modelyard_common.errors import (
    ConflictError,
    FieldError,
    UnprocessableError,
    found,
    reject_nulls,
)
from modelyard_common.governance import Governance
from modelyard_common.http import check_if_match, make_etag
from modelyard_common.pagination import PageParams
from modelyard_gateway.db import ModelGroup, announce_config_change
from modelyard_gateway.endpoints import repository as endpoints
from modelyard_gateway.governance.binding import BindingGate
from modelyard_gateway.groups import repository
from modelyard_gateway.groups.schemas import GroupCreate, GroupPolicy, GroupRead, GroupUpdate
from modelyard_gateway.instances import repository as instances


async def policies_of(
    session: AsyncSession, governance: Governance, rows: Sequence[ModelGroup]
) -> dict[uuid.UUID, GroupPolicy]:
    """Return, per bound group, how the gate judges serving its model now."""
    return {
        group_id: GroupPolicy(
            gate=standing.gate,
            approval=standing.approval,
            serving=verdict.allowed,
            reason=verdict.reason,
        )
        for group_id, (standing, verdict) in (await governance.serving(session, rows)).items()
    }


def to_read(
    row: ModelGroup, instance_ids: Sequence[uuid.UUID], policy: GroupPolicy | None = None
) -> GroupRead:
    """Return the API view of a group."""
    return GroupRead(
        id=row.id,
        name=row.name,
        description=row.description,
        instance_ids=list(instance_ids),
        enabled=row.enabled,
        registry_model_id=row.registry_model_id,
        endpoint_priority=row.endpoint_priority,  # type: ignore[arg-type]
        policy=policy,
        created_at=row.created_at,
        updated_at=row.updated_at,
        etag=make_etag(row.revision),
    )


async def _require(session: AsyncSession, workspace: str, group_id: uuid.UUID) -> ModelGroup:
    row = await repository.get(session, workspace=workspace, group_id=group_id)
    return found(row, f"No model group {group_id} in this workspace.")


async def _check_instances(
    session: AsyncSession, workspace: str, instance_ids: Sequence[uuid.UUID]
) -> None:
    found = await instances.existing_ids(session, workspace=workspace, ids=instance_ids)
    missing = [
        FieldError(
            loc=["body", "instance_ids", i],
            field=f"instance_ids.{i}",
            message=f"no instance {iid} in this workspace",
            type="not_found",
        )
        for i, iid in enumerate(instance_ids)
        if iid not in found
    ]
    if missing:
        raise UnprocessableError("Some instances do not exist in this workspace.", errors=missing)


async def _ensure_name_free(
    session: AsyncSession, workspace: str, name: str, other_than: uuid.UUID | None = None
) -> None:
    if await repository.name_taken(session, workspace=workspace, name=name, other_than=other_than):
        raise ConflictError(f"A model group named '{name}' already exists in this workspace.")


async def create_group(
    session: AsyncSession, *, principal: Principal, body: GroupCreate, gate: BindingGate
) -> GroupRead:
    """Return the new group after storing it with its ordered instances."""
    await _ensure_name_free(session, principal.workspace, body.name)
    await _check_instances(session, principal.workspace, body.instance_ids)
    if body.registry_model_id is not None:
        await gate.judge(
            session,
            workspace=principal.workspace,
            model_id=body.registry_model_id,
            group=body.name,
        )
    row = ModelGroup(
        id=uuid.uuid4(),
        workspace=principal.workspace,
        name=body.name,
        description=body.description,
        enabled=body.enabled,
        registry_model_id=body.registry_model_id,
        endpoint_priority=(body.endpoint_priority.model_dump() if body.endpoint_priority else None),
        revision=1,
    )
    session.add(row)
    await session.flush()
    await repository.replace_members(session, group_id=row.id, instance_ids=body.instance_ids)
    await announce_config_change(session)
    policies = await policies_of(session, gate.projection, [row])
    return to_read(row, body.instance_ids, policies.get(row.id))


async def get_group(
    session: AsyncSession, *, principal: Principal, group_id: uuid.UUID, governance: Governance
) -> GroupRead:
    """Return one group of the principal's workspace."""
    row = await _require(session, principal.workspace, group_id)
    members = await repository.members(session, group_ids=[row.id])
    policies = await policies_of(session, governance, [row])
    return to_read(row, members[row.id], policies.get(row.id))


async def list_groups(
    session: AsyncSession,
    *,
    principal: Principal,
    params: PageParams,
    enabled: bool | None,
    governance: Governance,
) -> tuple[list[GroupRead], str | None]:
    """Return one page of the workspace's groups and the next cursor."""
    rows, cursor = await repository.page(
        session, workspace=principal.workspace, params=params, enabled=enabled
    )
    members = await repository.members(session, group_ids=[r.id for r in rows])
    policies = await policies_of(session, governance, rows)
    return [to_read(r, members[r.id], policies.get(r.id)) for r in rows], cursor


async def update_group(
    session: AsyncSession,
    *,
    principal: Principal,
    group_id: uuid.UUID,
    body: GroupUpdate,
    if_match: str | None,
    gate: BindingGate,
) -> GroupRead:
    """Return the group after applying the given fields (412 on a stale ETag)."""
    row = await _require(session, principal.workspace, group_id)
    check_if_match(if_match, row.revision)
    changes = body.model_dump(exclude_unset=True)
    model_id = changes.get("registry_model_id", row.registry_model_id)
    name = changes.get("name") or row.name
    if model_id is not None and (model_id != row.registry_model_id or name != row.name):
        # A new binding, or a rename (a restricted approval names the groups that may serve).
        await gate.judge(session, workspace=principal.workspace, model_id=model_id, group=name)
    reject_nulls(changes, ("name", "description", "instance_ids", "enabled"))
    if "name" in changes and changes["name"] != row.name:
        await _ensure_name_free(session, principal.workspace, changes["name"], row.id)
    if body.instance_ids is not None:
        await _check_instances(session, principal.workspace, body.instance_ids)
        await repository.replace_members(session, group_id=row.id, instance_ids=body.instance_ids)
    if changes.get("registry_model_id", row.registry_model_id) != row.registry_model_id:
        # Re-bound: the old model's deployments leave; the new one's arrive by announcement.
        await endpoints.drop_deployment_members(session, group_id=row.id)
    for field in ("name", "description", "enabled", "registry_model_id", "endpoint_priority"):
        if field in changes:
            setattr(row, field, changes[field])
    if "endpoint_priority" in changes:
        await endpoints.reorder_members(session, group=row)
    row.revision += 1
    row.updated_at = datetime.now(UTC)
    await session.flush()
    await announce_config_change(session)
    members = await repository.members(session, group_ids=[row.id])
    policies = await policies_of(session, gate.projection, [row])
    return to_read(row, members[row.id], policies.get(row.id))


async def delete_group(session: AsyncSession, *, principal: Principal, group_id: uuid.UUID) -> None:
    """Delete a group; its instances stay."""
    row = await _require(session, principal.workspace, group_id)
    await repository.delete_group(session, group=row)
    await announce_config_change(session)
