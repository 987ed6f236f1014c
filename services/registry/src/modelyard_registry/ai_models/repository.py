"""The SQL of AI models: their filters and sort keys (a model's links: `links.repository`).

Lookup, names and pages are the inventory's (`inventory.repository`), shared with AI systems.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import ColumnElement

from modelyard_registry.db import AIModel
from modelyard_registry.inventory.repository import InventoryFilters, equal_to, sort_columns

SORT_COLUMNS = sort_columns(AIModel)


@dataclass(frozen=True)
class ModelFilters(InventoryFilters):
    learning_type: str | None = None
    provider: str | None = None
    approval: Sequence[str] = ()


def conditions(filters: ModelFilters) -> list[ColumnElement[bool]]:
    """Return the conditions of the filters only models have."""
    found = equal_to(
        [(AIModel.learning_type, filters.learning_type), (AIModel.provider, filters.provider)]
    )
    if filters.approval:
        found.append(AIModel.approval.in_(list(filters.approval)))
    return found
