"""Reading and setting a workspace's policy gate; each change is history and an event.

The deployer and the gateway learn the gate from `registry.policy.updated` (their projection);
a workspace that never chose one has every service's `policy_default_gate`.
"""

from __future__ import annotations

import uuid

from sqlalchemy.ext.asyncio import AsyncSession

from modelyard_common.auth import Principal
from modelyard_common.db import utcnow
from modelyard_common.governance import POLICY_UPDATED, Gate, PolicyEvent
from modelyard_common.pagination import PageParams
from modelyard_registry.db import HistoryEntry, WorkspacePolicy
from modelyard_registry.history.service import emit, list_history, record_change
from modelyard_registry.policy import repository
from modelyard_registry.policy.schemas import PolicyRead, PolicyUpdate

RESOURCE = "policy"


def policy_resource_id(workspace: str) -> uuid.UUID:
    """Return the stable id under which a workspace's policy changes are kept in history."""
    return uuid.uuid5(uuid.NAMESPACE_URL, f"modelyard:policy:{workspace}")


def _read(workspace: str, row: WorkspacePolicy | None, default_gate: Gate) -> PolicyRead:
    if row is None:
        return PolicyRead(
            workspace=workspace,
            gate=default_gate,
            is_default=True,
            comment="",
            updated_by=None,
            updated_at=None,
        )
    return PolicyRead(
        workspace=workspace,
        gate=Gate(row.gate),
        is_default=False,
        comment=row.comment,
        updated_by=row.updated_by,
        updated_at=row.updated_at,
    )


async def get_policy(
    session: AsyncSession, *, principal: Principal, default_gate: Gate
) -> PolicyRead:
    """Return the caller's workspace policy (the default when it never chose one)."""
    row = await repository.get(session, principal.workspace)
    return _read(principal.workspace, row, default_gate)


async def set_policy(
    session: AsyncSession, *, principal: Principal, body: PolicyUpdate, default_gate: Gate
) -> PolicyRead:
    """Return the policy after setting it; records history and `registry.policy.updated`."""
    workspace = principal.workspace
    before = await repository.get(session, workspace, for_update=True)
    old_gate = before.gate if before else default_gate.value
    await repository.upsert(
        session,
        workspace=workspace,
        gate=body.gate.value,
        comment=body.comment,
        updated_by=principal.sub,
        updated_at=utcnow(),
    )
    resource_id = policy_resource_id(workspace)
    await record_change(
        session,
        principal=principal,
        resource_type=RESOURCE,
        resource_id=resource_id,
        action="updated",
        changes={
            "gate": {"old": old_gate, "new": body.gate.value},
            "comment": {"old": before.comment if before else None, "new": body.comment},
        },
    )
    # Sent even when the gate did not change: a projection that missed it catches up.
    await emit(
        session,
        principal=principal,
        event_type=POLICY_UPDATED,
        subject=resource_id,
        data=PolicyEvent(workspace=workspace, gate=body.gate, updated_by=principal.sub),
    )
    await session.flush()
    row = await repository.get(session, workspace)
    if row is not None:
        await session.refresh(row)
    return _read(workspace, row, default_gate)


async def policy_history(
    session: AsyncSession, *, principal: Principal, params: PageParams
) -> tuple[list[HistoryEntry], str | None]:
    """Return one page of the workspace policy's changes."""
    return await list_history(
        session,
        workspace=principal.workspace,
        resource_id=policy_resource_id(principal.workspace),
        params=params,
    )
