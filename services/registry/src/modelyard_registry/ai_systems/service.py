"""The rules about AI systems: the AI Act gate on `in_use`, links removed with their system.

Uniqueness, optimistic concurrency, archive and the audit trail are the inventory's
(`inventory.service`), shared with AI models.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from modelyard_common.auth import Principal
from modelyard_common.history import Changes
from modelyard_registry.ai_systems import repository
from modelyard_registry.ai_systems.repository import SystemFilters
from modelyard_registry.ai_systems.schemas import AISystemCreate, AISystemRead, AISystemUpdate
from modelyard_registry.db import AISystem
from modelyard_registry.inventory.service import Inventory
from modelyard_registry.links import service as links
from modelyard_registry.obligations import service as obligations

# History records every field a change may set, and the archive state.
TRACKED = {*AISystemUpdate.model_fields, "archived"}


class SystemInventory(Inventory[AISystem, AISystemRead, SystemFilters, AISystemCreate]):
    """The inventory of AI systems, with the rules only systems have."""

    async def on_create(
        self, session: AsyncSession, *, principal: Principal, body: AISystemCreate
    ) -> None:
        """Refuse a new system `in_use` that the AI Act does not allow yet (409)."""
        # A new system has no obligation done yet: a high-risk one starts outside `in_use`.
        await obligations.ensure_may_be_in_use(
            session,
            system=AISystem(),
            status=body.status,
            risk_level=body.risk_level,
            ai_act_role=body.ai_act_role,
        )

    async def on_update(
        self, session: AsyncSession, *, row: AISystem, before: dict[str, Any], delta: Changes
    ) -> Changes:
        """Return the change; 409 when it puts in use a system the AI Act does not allow yet."""
        if {"status", "risk_level", "ai_act_role"} & delta.keys():
            await obligations.ensure_may_be_in_use(
                session,
                system=row,
                status=row.status,
                risk_level=row.risk_level,
                ai_act_role=row.ai_act_role,
            )
        return delta

    async def on_delete(
        self, session: AsyncSession, *, principal: Principal, row: AISystem
    ) -> None:
        """Remove every link of the system first, each recorded on both ends."""
        await links.detach_all(session, principal=principal, system=row)


systems = SystemInventory(
    AISystem,
    read=AISystemRead,
    tracked=TRACKED,
    sort_columns=repository.SORT_COLUMNS,
    conditions=repository.conditions,
)
