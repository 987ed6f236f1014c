"""Every SQL statement about the footprint projection and the usage counts."""

from __future__ import annotations

import uuid
from datetime import date, datetime
from typing import TypeVar

from sqlalchemy import Select, or_, select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from modelyard_common.pagination import PageParams, paginate
from modelyard_registry.db import AIModel, DeploymentFootprint, ModelUsageDay, ServingInterval

SPAN_SORT = {"started_at": ServingInterval.started_at}
# The tables kept per model: where it runs, where it ran when, its traffic per day.
PerModel = TypeVar("PerModel", DeploymentFootprint, ServingInterval, ModelUsageDay)


def _of_model(table: type[PerModel], workspace: str, model_id: uuid.UUID) -> Select[PerModel]:
    """Return the select of a workspace's rows of one model in `table`."""
    return select(table).where(table.workspace == workspace, table.model_id == model_id)


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
        _of_model(DeploymentFootprint, workspace, model_id)
        .where(DeploymentFootprint.state != "removed")
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
    stmt = _of_model(ServingInterval, workspace, model_id)
    if at is not None:
        stmt = stmt.where(
            ServingInterval.started_at <= at,
            or_(ServingInterval.ended_at.is_(None), ServingInterval.ended_at > at),
        )
    return await paginate(
        session, stmt, params=params, columns=SPAN_SORT, id_column=ServingInterval.id
    )


USAGE_COUNTERS = ("requests", "errors", "prompt_tokens", "completion_tokens", "total_tokens")


async def model_exists(session: AsyncSession, *, workspace: str, model_id: uuid.UUID) -> bool:
    """Return whether the workspace has a model with this id."""
    found = await session.scalar(
        select(AIModel.id).where(AIModel.workspace == workspace, AIModel.id == model_id)
    )
    return found is not None


async def add_usage(
    session: AsyncSession,
    *,
    workspace: str,
    model_id: uuid.UUID,
    day: date,
    counts: dict[str, int],
) -> None:
    """Add `counts` to the model's row of that day (created at zero when it is the first)."""
    stmt = insert(ModelUsageDay).values(workspace=workspace, model_id=model_id, day=day, **counts)
    table = ModelUsageDay.__table__
    await session.execute(
        stmt.on_conflict_do_update(
            index_elements=[ModelUsageDay.workspace, ModelUsageDay.model_id, ModelUsageDay.day],
            set_={name: table.c[name] + stmt.excluded[name] for name in USAGE_COUNTERS},
        )
    )


async def usage_days(
    session: AsyncSession, *, workspace: str, model_id: uuid.UUID, first: date, last: date
) -> list[ModelUsageDay]:
    """Return the model's usage rows from `first` to `last` (both included), oldest first."""
    rows = await session.scalars(
        _of_model(ModelUsageDay, workspace, model_id)
        .where(ModelUsageDay.day >= first, ModelUsageDay.day <= last)
        .order_by(ModelUsageDay.day)
    )
    return list(rows)
