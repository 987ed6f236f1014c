"""HTTP routes of a model's footprint and usage: thin, one service call each."""

from __future__ import annotations

import uuid
from datetime import date, datetime
from typing import Annotated

from fastapi import APIRouter, Depends, Query

from modelyard_common.auth import Viewer
from modelyard_common.db import SessionDep
from modelyard_common.pagination import Page, PageParams, page_params
from modelyard_common.routes import Routes
from modelyard_registry.deps import AUTH_PROBLEMS
from modelyard_registry.footprint import service
from modelyard_registry.footprint.repository import SPAN_SORT
from modelyard_registry.footprint.schemas import ModelFootprint, ModelUsage, ServingSpan

router = APIRouter(prefix="/v1/models/{model_id}", tags=["footprint"])
model = Routes(router)  # the model is the item: its prefix names it
SpanPage = Annotated[PageParams, Depends(page_params("started_at", list(SPAN_SORT)))]


@model.reading(
    "get_model_footprint",
    "Where a model runs now: devices, versions and states of its deployments",
    problems=(*AUTH_PROBLEMS, 404),
    subpath="/footprint",
)
async def get_model_footprint(
    session: SessionDep, principal: Viewer, model_id: uuid.UUID
) -> ModelFootprint:
    return await service.model_footprint(session, principal=principal, model_id=model_id)


@model.listing(
    "list_model_serving_spans",
    "Where a model ran when; `at` answers what was serving at that moment",
    problems=(*AUTH_PROBLEMS, 404, 422),
    subpath="/footprint/timeline",
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


@model.reading(
    "get_model_usage",
    "Gateway requests, errors and tokens of a model per UTC day, with totals",
    problems=(*AUTH_PROBLEMS, 404, 422),
    subpath="/usage",
    description=(
        "Counted by the gateway for groups bound to the model (`registry_model_id`); tokens "
        "are those the backends reported. `from` and `to` are UTC days, both included; by "
        "default the last 30 days up to today, at most 366. Days without traffic are left out "
        "of `days`. Counts arrive a few seconds after the requests (the gateway writes them "
        "every `MODELYARD_GATEWAY_USAGE_FLUSH_S`)."
    ),
)
async def get_model_usage(
    session: SessionDep,
    principal: Viewer,
    model_id: uuid.UUID,
    first: Annotated[
        date | None,
        Query(
            alias="from",
            description="First UTC day, e.g. 2026-03-01 (default: 29 days before `to`).",
        ),
    ] = None,
    last: Annotated[
        date | None, Query(alias="to", description="Last UTC day, included (default: today).")
    ] = None,
) -> ModelUsage:
    return await service.model_usage(
        session, principal=principal, model_id=model_id, first=first, last=last
    )
