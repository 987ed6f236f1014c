"""Cursor (keyset) pagination: stable pages even while rows are inserted."""

import base64
import binascii
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Any, Generic, TypeVar
from uuid import UUID

from fastapi import Query
from pydantic import BaseModel, Field
from sqlalchemy import Select, tuple_
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import InstrumentedAttribute

from modelyard_common.errors import FieldError, UnprocessableError

MAX_LIMIT = 200

T = TypeVar("T")
R = TypeVar("R")


class Page(BaseModel, Generic[T]):
    """One page of a list; pass `next_cursor` back as `cursor` for the next one."""

    items: list[T]
    next_cursor: str | None = Field(
        default=None, description="Opaque cursor of the next page; null on the last page."
    )


@dataclass(frozen=True)
class PageParams:
    limit: int
    cursor: str | None
    sort: str


def page_params(default_sort: str, allowed: Sequence[str]) -> Any:
    """Return a dependency reading `limit`, `cursor` and `sort` query parameters."""
    sort_help = "One of " + ", ".join(f"`{a}`, `-{a}`" for a in allowed) + "."

    def dependency(
        limit: Annotated[int, Query(ge=1, le=MAX_LIMIT, description="Page size.")] = 50,
        cursor: Annotated[str | None, Query(description="From the previous page.")] = None,
        sort: Annotated[str, Query(description=sort_help)] = default_sort,
    ) -> PageParams:
        if sort.lstrip("-") not in allowed:
            raise UnprocessableError(
                "Unknown sort field.",
                errors=[
                    FieldError(loc=["query", "sort"], field="sort", message=sort_help, type="enum")
                ],
            )
        return PageParams(limit=limit, cursor=cursor, sort=sort)

    return dependency


def _encode_value(value: Any) -> Any:
    if isinstance(value, datetime):
        return {"dt": value.isoformat()}
    if isinstance(value, UUID):
        return {"uuid": str(value)}
    return value


def _decode_value(value: Any) -> Any:
    if isinstance(value, dict):
        if "dt" in value:
            return datetime.fromisoformat(value["dt"])
        if "uuid" in value:
            return UUID(value["uuid"])
    return value


def encode_cursor(sort: str, values: Sequence[Any]) -> str:
    """Return an opaque cursor for a position in a sort order."""
    raw = json.dumps({"s": sort, "v": [_encode_value(v) for v in values]}, separators=(",", ":"))
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def decode_cursor(cursor: str, sort: str) -> list[Any]:
    """Return the position a cursor encodes; 422 when it is malformed or of another sort."""
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        payload = json.loads(base64.urlsafe_b64decode(padded.encode()))
        if payload["s"] != sort or not isinstance(payload["v"], list):
            raise ValueError("sort mismatch")
        return [_decode_value(v) for v in payload["v"]]
    except (ValueError, KeyError, TypeError, binascii.Error, json.JSONDecodeError) as exc:
        raise UnprocessableError(
            "The cursor is invalid or belongs to another sort order.",
            errors=[
                FieldError(
                    loc=["query", "cursor"], field="cursor", message="invalid cursor", type="cursor"
                )
            ],
        ) from exc


async def paginate(
    session: AsyncSession,
    stmt: Select[R],
    *,
    params: PageParams,
    columns: Mapping[str, InstrumentedAttribute[Any]],
    id_column: InstrumentedAttribute[Any],
) -> tuple[list[R], str | None]:
    """Return one page of `stmt`'s rows and the cursor of the next page."""
    descending = params.sort.startswith("-")
    column = columns[params.sort.lstrip("-")]
    key = tuple_(column, id_column)
    if params.cursor:
        position = decode_cursor(params.cursor, params.sort)
        bound = tuple_(*position)
        stmt = stmt.where(key < bound if descending else key > bound)
    if descending:
        stmt = stmt.order_by(column.desc(), id_column.desc())
    else:
        stmt = stmt.order_by(column.asc(), id_column.asc())
    rows = list((await session.scalars(stmt.limit(params.limit + 1))).all())
    next_cursor = None
    if len(rows) > params.limit:
        rows = rows[: params.limit]
        last = rows[-1]
        next_cursor = encode_cursor(
            params.sort, [getattr(last, column.key), getattr(last, id_column.key)]
        )
    return rows, next_cursor
