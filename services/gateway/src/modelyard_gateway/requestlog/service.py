"""Reading the request log: pages for the API, exports streamed as CSV or JSON lines."""

from __future__ import annotations

import csv
import io
from collections.abc import AsyncIterator, Sequence
from typing import Any

import orjson
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from modelyard_common.auth import Principal
from modelyard_common.pagination import Page, PageParams
from modelyard_common.row_views import view_of
from modelyard_gateway.db import RequestLogEntry
from modelyard_gateway.requestlog import repository
from modelyard_gateway.requestlog.schemas import ExportFormat, LoggedRequest, RequestFilters

EXPORT_FIELDS = tuple(LoggedRequest.model_fields)
MEDIA_TYPES: dict[str, str] = {"csv": "text/csv; charset=utf-8", "jsonl": "application/x-ndjson"}


def to_read(row: RequestLogEntry) -> LoggedRequest:
    """Return the API view of a logged request."""
    return view_of(LoggedRequest, row, group=row.group_name)


async def list_requests(
    session: AsyncSession, *, principal: Principal, filters: RequestFilters, params: PageParams
) -> Page[LoggedRequest]:
    """Return one page of the workspace's logged requests, newest first by default."""
    rows, cursor = await repository.page(
        session, workspace=principal.workspace, filters=filters, params=params
    )
    return Page(items=[to_read(r) for r in rows], next_cursor=cursor)


def _csv_value(value: Any) -> Any:
    if isinstance(value, list):
        return " ".join(value)  # instance names have no spaces
    if isinstance(value, bool):
        return "true" if value else "false"
    return value


def _csv(rows: Sequence[dict[str, Any]], *, header: bool) -> bytes:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    if header:
        writer.writerow(EXPORT_FIELDS)
    for row in rows:
        writer.writerow([_csv_value(row[name]) for name in EXPORT_FIELDS])
    return out.getvalue().encode()


def _jsonl(rows: Sequence[dict[str, Any]]) -> bytes:
    return b"".join(orjson.dumps(row) + b"\n" for row in rows)


async def export_requests(
    sessionmaker: async_sessionmaker[AsyncSession],
    *,
    principal: Principal,
    filters: RequestFilters,
    format: ExportFormat,
) -> AsyncIterator[bytes]:
    """Yield the workspace's matching requests, newest first, as CSV or JSON lines.

    Read with a server-side cursor in batches, so an export of millions of rows holds one batch
    in memory at a time; it sees one snapshot of the log.
    """
    if format == "csv":
        yield _csv([], header=True)
    async with sessionmaker() as session, session.begin():
        async for batch in repository.newest_first(
            session, workspace=principal.workspace, filters=filters
        ):
            rows = [to_read(r).model_dump(mode="json") for r in batch]
            yield _csv(rows, header=False) if format == "csv" else _jsonl(rows)
