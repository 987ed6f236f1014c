"""API views read from ORM rows: pydantic's `from_attributes`, plus the fields a row lacks.

A view copies most of its fields from the row of the same names and computes a few (an ETag from
the revision, `has_token` from a sealed column, a nested health view):

    view_of(InstanceRead, row, etag=make_etag(row.revision), health=health_of(state))

The schema's own validation applies to both, as if it were built field by field.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypeVar

from pydantic import BaseModel

__all__ = ["view_of"]

View = TypeVar("View", bound=BaseModel)


class _Overlay:
    """A row seen through some values: a name among the values reads the value, else the row's."""

    __slots__ = ("_row", "_values")

    def __init__(self, row: object, values: Mapping[str, Any]) -> None:
        self._row = row
        self._values = values

    def __getattr__(self, name: str) -> Any:
        if name in self._values:
            return self._values[name]
        return getattr(self._row, name)


def view_of(schema: type[View], row: object, **computed: Any) -> View:
    """Return `schema` read from `row`'s attributes of its field names, `computed` overriding."""
    source = _Overlay(row, computed) if computed else row
    return schema.model_validate(source, from_attributes=True)
