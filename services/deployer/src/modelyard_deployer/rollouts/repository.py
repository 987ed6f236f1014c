"""SQL of rollouts, their devices and their history."""

from __future__ import annotations

import uuid
from collections.abc import Collection, Sequence

from sqlalchemy import ColumnElement, Select, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from modelyard_common.db import workspace_row
from modelyard_common.sorting import Sorting
from modelyard_deployer.db import Deployment, Device, Rollout, RolloutDevice, RolloutEvent

SORTING = Sorting(
    {"created_at": Rollout.created_at, "updated_at": Rollout.updated_at}, id_column=Rollout.id
)
SORTS = SORTING.names
HISTORY_SORTING = Sorting({"recorded_at": RolloutEvent.id}, id_column=RolloutEvent.id)
HISTORY_SORTS = HISTORY_SORTING.names

# The states the engine moves (a paused rollout waits for a person).
MOVING = ("running", "aborting")


async def get(
    session: AsyncSession, *, workspace: str, rollout_id: uuid.UUID, for_update: bool = False
) -> Rollout | None:
    """Return a rollout of a workspace, optionally locked until the transaction ends."""
    return await workspace_row(
        session, Rollout, workspace=workspace, row_id=rollout_id, for_update=for_update
    )


async def moving_ids(session: AsyncSession) -> list[uuid.UUID]:
    """Return the rollouts the engine has work for, oldest first."""
    rows = await session.scalars(
        select(Rollout.id).where(Rollout.state.in_(MOVING)).order_by(Rollout.created_at)
    )
    return list(rows)


async def claim(session: AsyncSession, rollout_id: uuid.UUID) -> Rollout | None:
    """Return the rollout locked for this transaction, or None if another replica holds it."""
    return await session.scalar(
        select(Rollout)
        .where(Rollout.id == rollout_id, Rollout.state.in_(MOVING))
        .with_for_update(skip_locked=True)
    )


async def active_on_devices(
    session: AsyncSession, device_ids: Collection[uuid.UUID]
) -> list[tuple[uuid.UUID, str, uuid.UUID]]:
    """Return (device id, device name, rollout id) for devices already in an unfinished rollout."""
    if not device_ids:
        return []
    rows = await session.execute(
        select(RolloutDevice.device_id, Device.name, RolloutDevice.rollout_id)
        .join(Device, Device.id == RolloutDevice.device_id)
        .where(RolloutDevice.active, RolloutDevice.device_id.in_(device_ids))
        .order_by(RolloutDevice.device_id)
    )
    return [(d, n, r) for d, n, r in rows]


async def devices_of(
    session: AsyncSession, rollout_id: uuid.UUID, *, wave: int | None = None
) -> list[RolloutDevice]:
    """Return the rollout's devices (of one wave), by wave then device id."""
    stmt = select(RolloutDevice).where(RolloutDevice.rollout_id == rollout_id)
    if wave is not None:
        stmt = stmt.where(RolloutDevice.wave == wave)
    rows = await session.scalars(stmt.order_by(RolloutDevice.wave, RolloutDevice.device_id))
    return list(rows)


async def devices_by_id(
    session: AsyncSession, device_ids: Collection[uuid.UUID]
) -> dict[uuid.UUID, Device]:
    """Return devices by id."""
    if not device_ids:
        return {}
    rows = await session.scalars(select(Device).where(Device.id.in_(device_ids)))
    return {row.id: row for row in rows}


async def deployments_by_id(
    session: AsyncSession, deployment_ids: Collection[uuid.UUID]
) -> dict[uuid.UUID, Deployment]:
    """Return deployments by id, as committed (re-read, not the session's copies)."""
    if not deployment_ids:
        return {}
    rows = await session.scalars(
        select(Deployment)
        .where(Deployment.id.in_(deployment_ids))
        .execution_options(populate_existing=True)
    )
    return {row.id: row for row in rows}


async def release(session: AsyncSession, rollout_id: uuid.UUID) -> None:
    """Free the rollout's devices for other rollouts."""
    await session.execute(
        update(RolloutDevice)
        .where(RolloutDevice.rollout_id == rollout_id)
        .values(active=False)
        .execution_options(synchronize_session="fetch")
    )


def list_statement(
    *,
    workspace: str,
    visible: ColumnElement[bool],
    state: str | None,
    model_id: uuid.UUID | None,
) -> Select[Rollout]:
    """Return the query of a workspace's rollouts the caller may see, filtered."""
    stmt = select(Rollout).where(Rollout.workspace == workspace, visible)
    if state is not None:
        stmt = stmt.where(Rollout.state == state)
    if model_id is not None:
        stmt = stmt.where(Rollout.model_id == model_id)
    return stmt


def history_statement(rollout_id: uuid.UUID) -> Select[RolloutEvent]:
    """Return the query of a rollout's history."""
    return select(RolloutEvent).where(RolloutEvent.rollout_id == rollout_id)


def event(
    rollout: Rollout,
    kind: str,
    message: str,
    *,
    wave: int | None = None,
    device_id: uuid.UUID | None = None,
    actor: str | None = None,
) -> RolloutEvent:
    """Return a history entry of the rollout (the caller adds it)."""
    return RolloutEvent(
        rollout_id=rollout.id,
        kind=kind,
        wave=wave,
        device_id=device_id,
        message=message,
        actor=actor,
    )


def add_all(session: AsyncSession, rows: Sequence[object]) -> None:
    """Add rows to the session."""
    session.add_all(rows)
