"""The sorts a list offers and its cursor pages, declared once next to the list's SQL.

# repository.py
SORTING = Sorting({"name": Device.name, "created_at": Device.created_at}, id_column=Device.id)
SORTS = SORTING.names  # for `page_params`

# service.py
rows, cursor = await repository.SORTING.page(session, stmt, params)
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

from sqlalchemy import Select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import InstrumentedAttribute

from modelyard_common.pagination import PageParams, paginate

__all__ = ["Sorting"]

R = TypeVar("R")


@dataclass(frozen=True, slots=True)
class Sorting:
    """A list's sort columns by name, and the id column that breaks their ties."""

    columns: Mapping[str, InstrumentedAttribute[Any]]
    id_column: InstrumentedAttribute[Any]

    @property
    def names(self) -> tuple[str, ...]:
        """Return the names `sort` accepts (each also with a leading `-`)."""
        return tuple(self.columns)

    async def page(
        self, session: AsyncSession, stmt: Select[R], params: PageParams
    ) -> tuple[list[R], str | None]:
        """Return one page of `stmt`'s rows and the cursor of the next page."""
        return await paginate(
            session, stmt, params=params, columns=self.columns, id_column=self.id_column
        )
