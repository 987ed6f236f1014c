"""Rules about model groups: unique names, members from the same workspace, ETags, and the
policy gate on the registry model a group follows (no binding to an unapproved model)."""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from modelyard_common import history
from modelyard_common.auth import Principal
from modelyard_common.errors import UnprocessableError, field_error, invalid_field, reject_nulls
from modelyard_common.governance import Governance
from modelyard_common.history import HistoryEntryRead
from modelyard_common.http import check_if_match, make_etag
from modelyard_common.pagination import Page, PageParams
from modelyard_common.row_views import view_of
from modelyard_gateway.db import HistoryEntry, ModelGroup, announce_config_change
from modelyard_gateway.endpoints import repository as endpoints
from modelyard_gateway.governance.binding import BindingGate
from modelyard_gateway.groups import repository
from modelyard_gateway.groups.schemas import (
    GroupCreate,
    GroupPolicy,
    GroupRead,
    GroupStrategy,
    GroupUpdate,
    strategy_of,
)
from modelyard_gateway.instances import repository as instances
from modelyard_gateway.workspace_rows import (
    ensure_name_free,
    ensure_rename_free,
    refuse_unknown,
    require,
    save_change,
)


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
    return view_of(
        GroupRead,
        row,
        instance_ids=list(instance_ids),
        strategy=strategy_of(row.strategy),
        policy=policy,
        etag=make_etag(row.revision),
    )


def _audited(row: ModelGroup, instance_ids: Sequence[uuid.UUID]) -> dict[str, Any]:
    """Return the fields of a group the audit trail compares, as JSON values."""
    return {
        "name": row.name,
        "description": row.description,
        "enabled": row.enabled,
        "registry_model_id": str(row.registry_model_id) if row.registry_model_id else None,
        "endpoint_priority": row.endpoint_priority,
        "instance_ids": [str(i) for i in instance_ids],
        "strategy": strategy_of(row.strategy).stored(),
    }


def _check_weights(strategy: GroupStrategy, members: Sequence[uuid.UUID]) -> None:
    """Raise a 422 problem naming each weight given to an instance that is not a member."""
    known = set(members)
    outsiders = [i for i in strategy.weights or {} if i not in known]
    if outsiders:
        raise UnprocessableError(
            "Weights may only be given to the group's instances.",
            errors=[
                field_error(
                    ["body", "strategy", "weights", str(i)],
                    message=f"instance {i} is not a member of this group",
                    type="not_member",
                )
                for i in outsiders
            ],
        )


def _without_leavers(strategy: GroupStrategy, members: Sequence[uuid.UUID]) -> GroupStrategy:
    """Return the strategy without the weights of instances that left the group (a 422 problem
    when no weight would be left)."""
    known = set(members)
    if not strategy.weights or known.issuperset(strategy.weights):
        return strategy
    kept = {i: w for i, w in strategy.weights.items() if i in known}
    if sum(kept.values()) + strategy.default_weight <= 0:
        raise invalid_field(
            "The weighted strategy would have no weight left: send a new `strategy` too.",
            ["body", "instance_ids"],
            message="removes every instance with a weight",
            type="no_weight_left",
        )
    return strategy.model_copy(update={"weights": kept})


async def views(
    session: AsyncSession, governance: Governance, rows: Sequence[ModelGroup]
) -> list[GroupRead]:
    """Return the API views of groups, each with its instances in order and its gate's verdict."""
    members = await repository.members(session, group_ids=[r.id for r in rows])
    policies = await policies_of(session, governance, rows)
    return [to_read(r, members[r.id], policies.get(r.id)) for r in rows]


async def _check_instances(
    session: AsyncSession, workspace: str, instance_ids: Sequence[uuid.UUID]
) -> None:
    found = await instances.existing_ids(session, workspace=workspace, ids=instance_ids)
    refuse_unknown(
        "instance_ids",
        instance_ids,
        found,
        plural="instances",
        describe=lambda instance_id: f"instance {instance_id}",
    )


async def create_group(
    session: AsyncSession, *, principal: Principal, body: GroupCreate, gate: BindingGate
) -> GroupRead:
    """Return the new group after storing it with its ordered instances."""
    await ensure_name_free(session, ModelGroup, workspace=principal.workspace, name=body.name)
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
        strategy=body.strategy.stored(),
        log_bodies=body.log_bodies,
        revision=1,
    )
    _check_weights(body.strategy, body.instance_ids)
    session.add(row)
    await session.flush()
    await repository.replace_members(session, group_id=row.id, instance_ids=body.instance_ids)
    _audit(session, principal, row.id, "created", {}, _audited(row, body.instance_ids))
    await announce_config_change(session)
    policies = await policies_of(session, gate.projection, [row])
    return to_read(row, body.instance_ids, policies.get(row.id))


async def get_group(
    session: AsyncSession, *, principal: Principal, group_id: uuid.UUID, governance: Governance
) -> GroupRead:
    """Return one group of the principal's workspace."""
    row = await require(session, ModelGroup, workspace=principal.workspace, row_id=group_id)
    [view] = await views(session, governance, [row])
    return view


async def list_groups(
    session: AsyncSession,
    *,
    principal: Principal,
    params: PageParams,
    enabled: bool | None,
    governance: Governance,
) -> Page[GroupRead]:
    """Return one page of the workspace's groups."""
    rows, cursor = await repository.page(
        session, workspace=principal.workspace, params=params, enabled=enabled
    )
    return Page(items=await views(session, governance, rows), next_cursor=cursor)


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
    row = await require(session, ModelGroup, workspace=principal.workspace, row_id=group_id)
    check_if_match(if_match, row.revision)
    changes = body.model_dump(exclude_unset=True)
    model_id = changes.get("registry_model_id", row.registry_model_id)
    name = changes.get("name") or row.name
    if model_id is not None and (model_id != row.registry_model_id or name != row.name):
        # A new binding, or a rename (a restricted approval names the groups that may serve).
        await gate.judge(session, workspace=principal.workspace, model_id=model_id, group=name)
    reject_nulls(
        changes, ("name", "description", "instance_ids", "enabled", "strategy", "log_bodies")
    )
    await ensure_rename_free(session, row, changes.get("name"))
    members = (await repository.members(session, group_ids=[row.id]))[row.id]
    before = _audited(row, members)
    if body.instance_ids is not None:
        await _check_instances(session, principal.workspace, body.instance_ids)
        members = body.instance_ids
    if body.strategy is not None:
        _check_weights(body.strategy, members)
        row.strategy = body.strategy.stored()
    elif body.instance_ids is not None:
        row.strategy = _without_leavers(strategy_of(row.strategy), members).stored()
    if body.instance_ids is not None:
        await repository.replace_members(session, group_id=row.id, instance_ids=body.instance_ids)
    if changes.get("registry_model_id", row.registry_model_id) != row.registry_model_id:
        # Re-bound: the old model's deployments leave; the new one's arrive by announcement.
        await endpoints.drop_deployment_members(session, group_id=row.id)
    for field in (
        "name",
        "description",
        "enabled",
        "registry_model_id",
        "endpoint_priority",
        "log_bodies",
    ):
        if field in changes:
            setattr(row, field, changes[field])
    if "endpoint_priority" in changes:
        await endpoints.reorder_members(session, group=row)
    await save_change(session, row)
    [view] = await views(session, gate.projection, [row])
    _audit(session, principal, row.id, "updated", before, _audited(row, view.instance_ids))
    return view


async def delete_group(session: AsyncSession, *, principal: Principal, group_id: uuid.UUID) -> None:
    """Delete a group; its instances stay."""
    row = await require(session, ModelGroup, workspace=principal.workspace, row_id=group_id)
    members = (await repository.members(session, group_ids=[row.id]))[row.id]
    _audit(session, principal, row.id, "deleted", _audited(row, members), {})
    await repository.delete_group(session, group=row)
    await announce_config_change(session)


async def group_history(
    session: AsyncSession, *, principal: Principal, group_id: uuid.UUID, params: PageParams
) -> Page[HistoryEntryRead]:
    """Return one page of a group's audit trail (kept after the group is deleted)."""
    rows, cursor = await history.history_rows(
        session, HistoryEntry, workspace=principal.workspace, resource_id=group_id, params=params
    )
    return history.history_page(rows, cursor)


def _audit(
    session: AsyncSession,
    principal: Principal,
    group_id: uuid.UUID,
    action: str,
    before: Mapping[str, Any],
    after: Mapping[str, Any],
) -> None:
    """Record a change to a group in the trail (an update that changed nothing records none)."""
    changes = history.diff(before, after)
    if action != "updated" or changes:
        history.record(
            session,
            HistoryEntry,
            principal=principal,
            resource_type="group",
            resource_id=group_id,
            action=action,
            changes=changes,
        )
