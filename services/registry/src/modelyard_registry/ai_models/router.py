"""HTTP routes of AI models: the inventory's shared routes, learning types, a model's systems."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Query

from modelyard_common.auth import Viewer
from modelyard_common.db import ReadSessionDep
from modelyard_common.governance import ApprovalState
from modelyard_common.routes import Routes
from modelyard_registry.ai_models import service
from modelyard_registry.ai_models.repository import ModelFilters
from modelyard_registry.ai_models.schemas import (
    LEARNING_TYPE_DEFINITIONS,
    AIModelCreate,
    AIModelUpdate,
    LearningType,
    LearningTypeRead,
    ModelSystemLinkRead,
)
from modelyard_registry.deps import AUTH_PROBLEMS
from modelyard_registry.inventory import router as inventory

learning_types_router = APIRouter(prefix="/v1/learning-types", tags=["models", "reference"])
router = APIRouter(prefix="/v1/models", tags=["models"])
models = Routes(router, item="/{model_id}")


@Routes(learning_types_router).listing(
    "list_learning_types",
    "The learning types a model can have, each with its definition",
    problems=(),
)
async def list_learning_types() -> list[LearningTypeRead]:
    return [
        LearningTypeRead(id=kind, label=label, definition=definition)
        for kind, (label, definition) in LEARNING_TYPE_DEFINITIONS.items()
    ]


async def model_filters(
    q: inventory.SearchText = None,
    learning_type: LearningType | None = None,
    tag: inventory.AnyTag = None,
    provider: str | None = None,
    archived: inventory.ArchivedOnly = False,
    ids: inventory.SomeIds = None,
    approval: Annotated[
        list[ApprovalState] | None, Query(description="Any of these approval states.")
    ] = None,
) -> ModelFilters:
    return ModelFilters(
        **inventory.shared_filters(q, tag, archived, ids),
        learning_type=learning_type,
        provider=provider,
        approval=[a.value for a in approval or []],
    )


routes = inventory.InventoryRoutes(
    inventory=service.models,
    title="AI model",
    create_schema=AIModelCreate,
    update_schema=AIModelUpdate,
    filters=model_filters,
    delete_summary="Delete an unlinked AI model for good (admin)",
    delete_errors=(404, 409),
    history_summary="Every change to a model: who, when, old and new values",
)
routes.add_item_routes(router)


@models.reading(
    "list_model_systems",
    "The AI systems that use a model, with each description of use",
    problems=(*AUTH_PROBLEMS, 404),
    subpath="/systems",
)
async def list_model_systems(
    session: ReadSessionDep, principal: Viewer, model_id: uuid.UUID
) -> list[ModelSystemLinkRead]:
    return await service.list_systems_of_model(session, principal=principal, model_id=model_id)


routes.add_history_route(router)
