"""Cursor (keyset) pagination: stable pages even while rows are inserted."""

import base64
import binascii
import enum
import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Any, Generic, Literal, TypeVar
from uuid import UUID

from fastapi import Query, Response
from pydantic import BaseModel, Field
from sqlalchemy import BigInteger, Integer, Select, SmallInteger, tuple_
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import InstrumentedAttribute

from modelyard_common.errors import invalid_field
from modelyard_common.inputs import loads_guarded

MAX_LIMIT = 200
# A cursor is a sort position: two values, each at most a `{"dt": ...}` wrapper. Anything longer
# or deeper than a service could have made is refused before it is decoded or parsed.
MAX_CURSOR_CHARS = 4096
MAX_CURSOR_DEPTH = 3

T = TypeVar("T")
R = TypeVar("R")


class Page(BaseModel, Generic[T]):
    """One page of a list; pass `next_cursor` back as `cursor` for the next one."""

    items: list[T]
    next_cursor: str | None = Field(
        default=None, description="Opaque cursor of the next page; null on the last page."
    )

    def response(self) -> Response:
        """Return the page as its JSON response, serialized once (pydantic's own encoder).

        A route returning the page itself has FastAPI dump it to dicts, validate those against
        the response model again and encode them in Python: for a page of 50 items, most of a
        list request's CPU. The route still declares `response_model=Page[...]` for OpenAPI.
        """
        return Response(self.model_dump_json(by_alias=True), media_type="application/json")


@dataclass(frozen=True)
class PageParams:
    limit: int
    cursor: str | None
    sort: str


def page_params(default_sort: str, allowed: Sequence[str]) -> Any:
    """Return a dependency reading `limit`, `cursor` and `sort` query parameters.

    `sort` is declared as an enum of the allowed fields, each ascending or with a leading `-`
    for descending; any other value is a 422.
    """
    sort_help = "One of " + ", ".join(f"`{a}`, `-{a}`" for a in allowed) + "."
    choices = tuple(v for a in allowed for v in (a, f"-{a}"))
    SortValue = Literal[choices]  # type: ignore[valid-type]

    async def dependency(
        limit: Annotated[int, Query(ge=1, le=MAX_LIMIT, description="Page size.")] = 50,
        cursor: Annotated[str | None, Query(description="From the previous page.")] = None,
        sort: Annotated[SortValue, Query(description=sort_help)] = default_sort,
    ) -> PageParams:
        return PageParams(limit=limit, cursor=cursor, sort=str(sort))

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


def decode_cursor(
    cursor: str, sort: str, keys: Sequence[InstrumentedAttribute[Any]] | None = None
) -> list[Any]:
    """Return the position a cursor encodes; 422 when it is malformed or of another sort.

    With `keys` (the sort's columns), the position must hold one value per key, each of the
    key's type and range, so a crafted cursor never reaches the database.
    """
    try:
        if len(cursor) > MAX_CURSOR_CHARS:
            raise ValueError("cursor too long")
        padded = cursor + "=" * (-len(cursor) % 4)
        payload = loads_guarded(
            base64.urlsafe_b64decode(padded.encode()), max_depth=MAX_CURSOR_DEPTH
        )
        if (
            not isinstance(payload, dict)
            or payload["s"] != sort
            or not isinstance(payload["v"], list)
        ):
            raise ValueError("sort mismatch")
        values = [_decode_value(v) for v in payload["v"]]
        if keys is not None:
            if len(values) != len(keys):
                raise ValueError("wrong number of values")
            values = [_check_key_value(key, value) for key, value in zip(keys, values, strict=True)]
        return values
    except (ValueError, KeyError, TypeError, AttributeError, binascii.Error) as exc:
        raise invalid_field(
            "The cursor is invalid or belongs to another sort order.",
            ["query", "cursor"],
            message="invalid cursor",
            type="cursor",
        ) from exc


_INT_BITS: list[tuple[type[Integer], int]] = [(SmallInteger, 15), (BigInteger, 63), (Integer, 31)]


def _check_key_value(key: InstrumentedAttribute[Any], value: Any) -> Any:
    """Return `value` as a value of column `key`'s type; ValueError when it cannot be one."""
    column_type = key.type
    try:
        expected = column_type.python_type
    except NotImplementedError:
        expected = object
    if value is None:
        raise ValueError("null in cursor")
    if isinstance(expected, type) and issubclass(expected, enum.Enum):
        return expected(value)
    if expected is bool:
        if not isinstance(value, bool):
            raise ValueError("not a boolean")
    elif expected is int:
        if not isinstance(value, int) or isinstance(value, bool):
            raise ValueError("not an integer")
        bits = next((b for t, b in _INT_BITS if isinstance(column_type, t)), 63)
        if not -(2**bits) <= value < 2**bits:
            raise ValueError("integer out of range")
    elif expected is float:
        if (
            not isinstance(value, int | float)
            or isinstance(value, bool)
            or not math.isfinite(value)
        ):
            raise ValueError("not a number")
    elif expected is str:
        if not isinstance(value, str) or "\x00" in value:
            raise ValueError("not a text")
    elif expected is datetime:
        if not isinstance(value, datetime) or value.tzinfo is None:
            raise ValueError("not an aware time")
    elif expected is UUID:
        if not isinstance(value, UUID):
            raise ValueError("not a UUID")
    elif expected is not object and not isinstance(value, expected):
        raise ValueError(f"not a {expected.__name__}")
    return value


async def paginate(
    session: AsyncSession,
    stmt: Select[R],
    *,
    params: PageParams,
    columns: Mapping[str, InstrumentedAttribute[Any]],
    id_column: InstrumentedAttribute[Any],
    rows: bool = False,
) -> tuple[list[Any], str | None]:
    """Return one page of `stmt`'s rows and the cursor of the next page.

    A statement selecting one entity gives its instances; with `rows`, a statement selecting
    columns gives its rows (each holding the sort key's and the id's columns by name).
    """
    descending = params.sort.startswith("-")
    column = columns[params.sort.lstrip("-")]
    key = tuple_(column, id_column)
    if params.cursor:
        position = decode_cursor(params.cursor, params.sort, [column, id_column])
        bound = tuple_(*position)
        stmt = stmt.where(key < bound if descending else key > bound)
    if descending:
        stmt = stmt.order_by(column.desc(), id_column.desc())
    else:
        stmt = stmt.order_by(column.asc(), id_column.asc())
    stmt = stmt.limit(params.limit + 1)
    found: list[Any] = list(
        (await session.execute(stmt)).all() if rows else (await session.scalars(stmt)).all()
    )
    next_cursor = None
    if len(found) > params.limit:
        found = found[: params.limit]
        last = found[-1]
        next_cursor = encode_cursor(
            params.sort, [getattr(last, column.key), getattr(last, id_column.key)]
        )
    return found, next_cursor


def where_given(stmt: Select[R], entity: Any, **values: Any) -> Select[R]:
    """Return `stmt` keeping the rows whose columns equal the given values (None: any value)."""
    for name, value in values.items():
        if value is not None:
            stmt = stmt.where(getattr(entity, name) == value)
    return stmt


async def paginate_entity(
    session: AsyncSession,
    stmt: Select[R],
    entity: Any,
    *,
    params: PageParams,
    sorts: Sequence[str],
) -> tuple[list[R], str | None]:
    """Return one page of `stmt`'s `entity` rows, sorted by one of the `sorts` columns, then id."""
    return await paginate(
        session,
        stmt,
        params=params,
        columns={name: getattr(entity, name) for name in sorts},
        id_column=entity.id,
    )
