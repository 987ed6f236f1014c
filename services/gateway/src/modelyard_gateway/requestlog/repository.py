"""Every SQL statement reading the request log (writes are COPYs, in writer.py)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence

from sqlalchemy import Select, select
from sqlalchemy.ext.asyncio import AsyncSession

from modelyard_common.pagination import PageParams, paginate
from modelyard_gateway.db import RequestLogEntry
from modelyard_gateway.requestlog.schemas import RequestFilters

SORTS = ("at",)
EXPORT_BATCH = 1000


def matching(workspace: str, filters: RequestFilters) -> Select[RequestLogEntry]:
    """Return the query of the workspace's requests that match `filters`."""
    entry = RequestLogEntry
    stmt = select(entry).where(entry.workspace == workspace)
    if filters.since is not None:
        stmt = stmt.where(entry.at >= filters.since)
    if filters.until is not None:
        stmt = stmt.where(entry.at < filters.until)
    if filters.key_id is not None:
        stmt = stmt.where(entry.key_id == filters.key_id)
    if filters.group is not None:
        stmt = stmt.where(entry.group_name == filters.group)
    if filters.status is not None:
        stmt = stmt.where(entry.status == filters.status)
    if filters.status_class is not None:
        low = int(filters.status_class[0]) * 100
        stmt = stmt.where(entry.status >= low, entry.status < low + 100)
    if filters.error_cause is not None:
        stmt = stmt.where(entry.error_cause == filters.error_cause)
    if filters.registry_model_id is not None:
        stmt = stmt.where(entry.registry_model_id == filters.registry_model_id)
    return stmt


async def page(
    session: AsyncSession, *, workspace: str, filters: RequestFilters, params: PageParams
) -> tuple[Sequence[RequestLogEntry], str | None]:
    """Return one page of the workspace's matching requests and the next cursor."""
    return await paginate(
        session,
        matching(workspace, filters),
        params=params,
        columns={"at": RequestLogEntry.at},
        id_column=RequestLogEntry.id,
    )


async def newest_first(
    session: AsyncSession, *, workspace: str, filters: RequestFilters
) -> AsyncIterator[Sequence[RequestLogEntry]]:
    """Yield the workspace's matching requests, newest first, in batches (a server cursor)."""
    stmt = matching(workspace, filters).order_by(
        RequestLogEntry.at.desc(), RequestLogEntry.id.desc()
    )
    result = await session.stream_scalars(stmt.execution_options(yield_per=EXPORT_BATCH))
    async for batch in result.partitions(EXPORT_BATCH):
        yield batch
