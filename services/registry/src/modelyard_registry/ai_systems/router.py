"""HTTP routes of AI systems: the inventory's shared routes with the systems' filters."""

from __future__ import annotations

from fastapi import APIRouter

from modelyard_registry.ai_systems import service
from modelyard_registry.ai_systems.repository import SystemFilters
from modelyard_registry.ai_systems.schemas import (
    AISystemCreate,
    AISystemUpdate,
    RiskLevel,
    SystemStatus,
)
from modelyard_registry.inventory import router as inventory

router = APIRouter(prefix="/v1/systems", tags=["systems"])


async def system_filters(
    q: inventory.SearchText = None,
    status: SystemStatus | None = None,
    risk_level: RiskLevel | None = None,
    tag: inventory.AnyTag = None,
    owner: str | None = None,
    archived: inventory.ArchivedOnly = False,
    ids: inventory.SomeIds = None,
) -> SystemFilters:
    return SystemFilters(
        **inventory.shared_filters(q, tag, archived, ids),
        status=status,
        risk_level=risk_level,
        owner=owner,
    )


routes = inventory.InventoryRoutes(
    inventory=service.systems,
    title="AI system",
    create_schema=AISystemCreate,
    update_schema=AISystemUpdate,
    filters=system_filters,
    delete_summary="Delete an AI system and its links for good (admin)",
    delete_errors=(404,),
    history_summary="Every change to a system, including its links",
)
routes.add_item_routes(router)
routes.add_history_route(router)
