"""Full-text search over a stored tsvector, with a substring match on the name."""

from __future__ import annotations

from typing import Any

from sqlalchemy import ColumnElement, func, or_


def matches_text(search: Any, name: Any, q: str) -> ColumnElement[bool]:
    """Return a condition true for rows whose text matches `q` or whose name contains it."""
    pattern = "%" + q.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
    return or_(search.op("@@")(func.websearch_to_tsquery("english", q)), name.ilike(pattern))
