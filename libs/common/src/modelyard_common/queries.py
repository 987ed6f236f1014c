"""Query steps the services' repositories share."""

from __future__ import annotations

from typing import TypeVar

from sqlalchemy import Select
from sqlalchemy.ext.asyncio import AsyncSession

T = TypeVar("T")


async def scalar_row(
    session: AsyncSession, stmt: Select[T], *, for_update: bool = False
) -> T | None:
    """Return the first row `stmt` selects, or None.

    `for_update` locks the row until the transaction ends, for a read that a change follows.
    """
    if for_update:
        stmt = stmt.with_for_update()
    return await session.scalar(stmt)
