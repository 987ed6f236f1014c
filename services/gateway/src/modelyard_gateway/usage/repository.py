"""Every SQL statement about usage counts."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import date
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from modelyard_gateway.db import ModelUsage

COUNTERS = ("requests", "errors", "prompt_tokens", "completion_tokens", "total_tokens")


async def add_usage(session: AsyncSession, *, rows: Sequence[dict[str, Any]]) -> None:
    """Add each row's counts to its (workspace, model, day), creating the day's row if new."""
    if not rows:
        return
    stmt = insert(ModelUsage).values(list(rows))
    table = ModelUsage.__table__
    await session.execute(
        stmt.on_conflict_do_update(
            index_elements=[ModelUsage.workspace, ModelUsage.model_id, ModelUsage.day],
            set_={
                **{name: table.c[name] + stmt.excluded[name] for name in COUNTERS},
                "updated_at": func.now(),
            },
        )
    )


async def usage_days(
    session: AsyncSession, *, workspace: str, model_id: uuid.UUID
) -> list[ModelUsage]:
    """Return a model's usage rows in a workspace, oldest day first."""
    rows = await session.scalars(
        select(ModelUsage)
        .where(ModelUsage.workspace == workspace, ModelUsage.model_id == model_id)
        .order_by(ModelUsage.day)
    )
    return list(rows)


def as_row(
    workspace: str, model_id: uuid.UUID, day: date, counts: dict[str, int]
) -> dict[str, Any]:
    """Return the insert values of one (workspace, model, day)'s counts."""
    return {"workspace": workspace, "model_id": model_id, "day": day, **counts}
