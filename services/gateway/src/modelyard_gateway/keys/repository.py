"""Every SQL statement about client API keys."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from modelyard_common.pagination import PageParams, paginate_entity
from modelyard_gateway.db import ApiKey

SORTS = ("created_at", "name")


async def page(
    session: AsyncSession, *, workspace: str, params: PageParams, revoked: bool | None
) -> tuple[list[ApiKey], str | None]:
    """Return one page of the workspace's keys and the next cursor."""
    stmt = select(ApiKey).where(ApiKey.workspace == workspace)
    if revoked is not None:
        stmt = stmt.where(
            ApiKey.revoked_at.is_not(None) if revoked else ApiKey.revoked_at.is_(None)
        )
    return await paginate_entity(session, stmt, ApiKey, params=params, sorts=SORTS)


async def add(session: AsyncSession, *, key: ApiKey) -> None:
    """Insert a key row."""
    session.add(key)
    await session.flush()
