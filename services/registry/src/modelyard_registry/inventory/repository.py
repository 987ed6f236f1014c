"""The SQL both inventory tables (AI models, AI systems) share: lookup, names, filtered pages."""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from sqlalchemy import ColumnElement, Row, func, select
from sqlalchemy import inspect as sa_inspect
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import InstrumentedAttribute

from modelyard_common.pagination import PageParams, paginate
from modelyard_common.queries import scalar_row
from modelyard_registry.db import AIModel, AISystem
from modelyard_registry.search import matches_text

# The inventory's tables: code written once for both is type-checked for each.
Item = TypeVar("Item", AIModel, AISystem)


def sort_columns(table: type[Item]) -> dict[str, InstrumentedAttribute[Any]]:
    """Return the sort keys every inventory list has (name, creation, last change)."""
    return {"name": table.name, "created_at": table.created_at, "updated_at": table.updated_at}


@dataclass(frozen=True)
class InventoryFilters:
    """The filters of every inventory list; each kind adds its own."""

    q: str | None = None
    tags: Sequence[str] = ()
    archived: bool | None = False
    ids: Sequence[uuid.UUID] = ()


async def get(
    session: AsyncSession,
    table: type[Item],
    *,
    workspace: str,
    item_id: uuid.UUID,
    for_update: bool = False,
) -> Item | None:
    """Return the workspace's row with this id, or None."""
    stmt = select(table).where(table.workspace == workspace, table.id == item_id)
    return await scalar_row(session, stmt, for_update=for_update)


async def name_taken(
    session: AsyncSession,
    table: type[Item],
    *,
    workspace: str,
    name: str,
    exclude_id: uuid.UUID | None = None,
) -> bool:
    """Return whether another row of the workspace has this name (case-insensitive)."""
    stmt = select(table.id).where(
        table.workspace == workspace, func.lower(table.name) == name.lower()
    )
    if exclude_id is not None:
        stmt = stmt.where(table.id != exclude_id)
    return (await session.scalar(stmt.limit(1))) is not None


def shared_conditions(table: type[Item], filters: InventoryFilters) -> list[ColumnElement[bool]]:
    """Return the conditions of the filters every kind has (text, tags, archived, ids)."""
    conditions: list[ColumnElement[bool]] = []
    if filters.q:
        conditions.append(matches_text(table.search, table.name, filters.q))
    if filters.tags:
        conditions.append(table.tags.overlap(list(filters.tags)))
    if filters.archived is not None:
        archived = (
            table.archived_at.is_not(None) if filters.archived else table.archived_at.is_(None)
        )
        conditions.append(archived)
    if filters.ids:
        conditions.append(table.id.in_(list(filters.ids)))
    return conditions


def equal_to(pairs: Iterable[tuple[Any, str | None]]) -> list[ColumnElement[bool]]:
    """Return `column == value` for each pair whose value is set (a filter left out is None)."""
    return [column == value for column, value in pairs if value]


def view_columns(table: type[Item]) -> list[InstrumentedAttribute[Any]]:
    """Return the columns a row's API view is made of (all but the deferred `search`)."""
    mapper = sa_inspect(table)
    return [getattr(table, attr.key) for attr in mapper.column_attrs if not attr.deferred]


async def list_page(
    session: AsyncSession,
    table: type[Item],
    *,
    workspace: str,
    columns: Sequence[InstrumentedAttribute[Any]],
    conditions: Iterable[ColumnElement[bool]],
    sort_columns: Mapping[str, InstrumentedAttribute[Any]],
    params: PageParams,
) -> tuple[list[Row[Any]], str | None]:
    """Return one page of the workspace's rows matching every condition, as rows of `columns`.

    Rows, not ORM instances: a page is only read, and 50 instances (identity map, attribute
    instrumentation) cost more than the query.
    """
    stmt = select(*columns).where(table.workspace == workspace, *conditions)
    return await paginate(
        session, stmt, params=params, columns=sort_columns, id_column=table.id, rows=True
    )
