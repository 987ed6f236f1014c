"""The HTTP side of every history list: its page parameters and its page of entries."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends

from modelyard_common.pagination import Page, PageParams, page_params
from modelyard_registry.db import HistoryEntry
from modelyard_registry.history.repository import SORT_COLUMNS
from modelyard_registry.history.schemas import HistoryEntryRead

HistoryPage = Annotated[PageParams, Depends(page_params("at", list(SORT_COLUMNS)))]


def history_page(rows: list[HistoryEntry], cursor: str | None) -> Page[HistoryEntryRead]:
    """Return a page of history entries as the API shows them."""
    return Page(items=[HistoryEntryRead.model_validate(r) for r in rows], next_cursor=cursor)
