"""HTTP routes of a model's footprint: thin, one service call each."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Depends, Query

from modelyard_common.auth import Viewer
from modelyard_common.db import SessionDep
from modelyard_common.errors import problem_responses
from modelyard_common.pagination import Page, PageParams, page_params
from modelyard_registry.footprint import service
from modelyard_registry.footprint.repository import SPAN_SORT
from modelyard_registry.footprint.schemas import ModelFootprint, ServingSpan

router = APIRouter(prefix="/v1/models/{model_id}/footprint", tags=["footprint"])
SpanPage = Annotated[PageParams, Depends(page_params("started_at", list(SPAN_SORT)))]


@router.get(
    "",
    operation_id="get_model_footprint",
    summary="Where a model runs now: devices, versions and states of its deployments",
    responses=problem_responses(401, 403, 404),
)
async def get_model_footprint(
    session: SessionDep, principal: Viewer, model_id: uuid.UUID
) -> ModelFootprint:
    return await service.model_footprint(session, principal=principal, model_id=model_id)


@router.get(
    "/timeline",
    operation_id="list_model_serving_spans",
    summary="Where a model ran when; `at` answers what was serving at that moment",
    responses=problem_responses(401, 403, 404, 422),
)
async def list_model_serving_spans(
    session: SessionDep,
    principal: Viewer,
    model_id: uuid.UUID,
    params: SpanPage,
    at: Annotated[
        datetime | None, Query(description="RFC 3339 time, e.g. 2026-06-01T12:00:00Z.")
    ] = None,
) -> Page[ServingSpan]:
    items, cursor = await service.model_timeline(
        session, principal=principal, model_id=model_id, at=at, params=params
    )
    return Page(items=items, next_cursor=cursor)
