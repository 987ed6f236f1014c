"""The SQL of AI systems: their filters and sort keys.

Lookup, names and pages are the inventory's (`inventory.repository`), shared with AI models.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import ColumnElement

from modelyard_registry.db import AISystem
from modelyard_registry.inventory.repository import InventoryFilters, equal_to, sort_columns

SORT_COLUMNS = {**sort_columns(AISystem), "risk_level": AISystem.risk_level}


@dataclass(frozen=True)
class SystemFilters(InventoryFilters):
    status: str | None = None
    risk_level: str | None = None
    owner: str | None = None


def conditions(filters: SystemFilters) -> list[ColumnElement[bool]]:
    """Return the conditions of the filters only systems have."""
    return equal_to(
        [
            (AISystem.status, filters.status),
            (AISystem.risk_level, filters.risk_level),
            (AISystem.owner, filters.owner),
        ]
    )
