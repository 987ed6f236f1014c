"""Every SQL statement about the footprint projection."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from modelyard_common.pagination import PageParams, paginate
from modelyard_registry.orm import DeploymentFootprint, ServingInterval

SPAN_SORT = {"started_at": ServingInterval.started_at}


async def get_place(
    session: AsyncSession, *, deployment_id: uuid.UUID
) -> DeploymentFootprint | None:
    """Return a deployment's row, locked for this transaction, or None."""
    return await session.scalar(
        select(DeploymentFootprint)
        .where(DeploymentFootprint.deployment_id == deployment_id)
        .with_for_update()
    )


async def open_span(session: AsyncSession, *, deployment_id: uuid.UUID) -> ServingInterval | None:
    """Return the deployment's span that has not ended, or None."""
    return await session.scalar(
        select(ServingInterval).where(
            ServingInterval.deployment_id == deployment_id, ServingInterval.ended_at.is_(None)
        )
    )


async def places(
    session: AsyncSession, *, workspace: str, model_id: uuid.UUID
) -> list[DeploymentFootprint]:
    """Return the model's deployments that are not removed, by device."""
    rows = await session.scalars(
        select(DeploymentFootprint)
        .where(
            DeploymentFootprint.workspace == workspace,
            DeploymentFootprint.model_id == model_id,
            DeploymentFootprint.state != "removed",
        )
        .order_by(DeploymentFootprint.device_id, DeploymentFootprint.deployment_id)
    )
    return list(rows)


async def spans(
    session: AsyncSession,
    *,
    workspace: str,
    model_id: uuid.UUID,
    at: datetime | None,
    params: PageParams,
) -> tuple[list[ServingInterval], str | None]:
    """Return one page of the model's serving spans; with `at`, only those covering it."""
    stmt = select(ServingInterval).where(
        ServingInterval.workspace == workspace, ServingInterval.model_id == model_id
    )
    if at is not None:
        stmt = stmt.where(
            ServingInterval.started_at <= at,
            or_(ServingInterval.ended_at.is_(None), ServingInterval.ended_at > at),
        )
    return await paginate(
        session, stmt, params=params, columns=SPAN_SORT, id_column=ServingInterval.id
    )
