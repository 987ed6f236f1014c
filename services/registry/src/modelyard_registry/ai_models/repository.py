"""The SQL of AI models: their filters and sort keys, and the systems that use a model.

Lookup, names and pages are the inventory's (`inventory.repository`), shared with AI systems.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import ColumnElement, select
from sqlalchemy.ext.asyncio import AsyncSession

from modelyard_registry.db import AIModel, AISystem, SystemModelLink
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


async def systems_using(
    session: AsyncSession, *, workspace: str, model_id: uuid.UUID
) -> list[tuple[SystemModelLink, AISystem]]:
    """Return the links of a model with the systems on their other end, by system name."""
    rows = await session.execute(
        select(SystemModelLink, AISystem)
        .join(AISystem, AISystem.id == SystemModelLink.system_id)
        .where(SystemModelLink.workspace == workspace, SystemModelLink.model_id == model_id)
        .order_by(AISystem.name, AISystem.id)
    )
    return [(link, system) for link, system in rows.all()]
