"""API views read from ORM rows: the row's columns, plus the few fields computed for the view.

    view_of(schemas.Device, device, status=status_of(device), etag=make_etag(device.revision))

validates `schemas.Device` from the row's attributes (`from_attributes=True`), each field named
in the keywords taken from there instead: no field-by-field copy to keep in step with the schema.
"""

from __future__ import annotations

from typing import Any, TypeVar

from pydantic import BaseModel

__all__ = ["view_of"]

M = TypeVar("M", bound=BaseModel)


class _Overlay:
    """The attributes of a row, some of them replaced or added."""

    __slots__ = ("_row", "_values")

    def __init__(self, row: object, values: dict[str, Any]) -> None:
        self._row = row
        self._values = values

    def __getattr__(self, name: str) -> Any:
        if name in self._values:
            return self._values[name]
        return getattr(self._row, name)


def view_of(schema: type[M], row: object, **computed: Any) -> M:
    """Return `schema` validated from `row`'s attributes, with the `computed` fields given here."""
    return schema.model_validate(_Overlay(row, computed), from_attributes=True)
