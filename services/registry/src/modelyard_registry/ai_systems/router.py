"""HTTP routes of AI systems: the inventory's shared routes with the systems' filters."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Query

from modelyard_registry.ai_systems import service
from modelyard_registry.ai_systems.repository import SystemFilters
from modelyard_registry.ai_systems.schemas import (
    AISystemCreate,
    AISystemRead,
    AISystemUpdate,
    RiskLevel,
    SystemStatus,
)
from modelyard_registry.inventory.router import InventoryRoutes

router = APIRouter(prefix="/v1/systems", tags=["systems"])


def system_filters(
    q: Annotated[str | None, Query(max_length=200, description="Full-text search.")] = None,
    status: SystemStatus | None = None,
    risk_level: RiskLevel | None = None,
    tag: Annotated[list[str] | None, Query(description="Any of these tags.")] = None,
    owner: str | None = None,
    archived: Annotated[
        bool | None, Query(description="false (default): active only; true: archived only.")
    ] = False,
    ids: Annotated[
        list[uuid.UUID] | None, Query(max_length=200, description="Fetch these ids in one call.")
    ] = None,
) -> SystemFilters:
    return SystemFilters(
        q=q,
        status=status,
        risk_level=risk_level,
        tags=[t.lower() for t in tag or []],
        owner=owner,
        archived=None if ids else archived,
        ids=ids or [],
    )


routes = InventoryRoutes(
    inventory=service.systems,
    noun="system",
    title="AI system",
    read_schema=AISystemRead,
    create_schema=AISystemCreate,
    update_schema=AISystemUpdate,
    filters=system_filters,
    delete_summary="Delete an AI system and its links for good (admin)",
    delete_errors=(404,),
    history_summary="Every change to a system, including its links",
)
routes.add_item_routes(router)
routes.add_history_route(router)
