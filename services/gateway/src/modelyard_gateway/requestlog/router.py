"""Admin routes of the request log (JWT: viewers read their own workspace's requests)."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import StreamingResponse

from modelyard_common.auth import Viewer
from modelyard_common.db import SessionDep
from modelyard_common.pagination import Page, PageParams, page_params
from modelyard_common.routes import Routes
from modelyard_gateway.requestlog import service
from modelyard_gateway.requestlog.repository import SORTS
from modelyard_gateway.requestlog.schemas import (
    ExportFormat,
    LoggedRequest,
    RequestFilters,
    StatusClass,
)

router = APIRouter(prefix="/v1/requests", tags=["requests"])
requests = Routes(router)

Paging = Annotated[PageParams, Depends(page_params("-at", SORTS))]

_CSV_EXAMPLE = (
    "id,at,key_id,endpoint,group,registry_model_id,instances,attempts,status,error_cause,"
    "prompt_tokens,completion_tokens,total_tokens,ttfb_ms,duration_ms,stream,replica,"
    "request_body,response_body\n"
    "4b1c0a4e-8f4b-4c51-9b7e-2f3a55d0a1c2,2026-12-06T15:04:05.123000Z,"
    "0f8fad5b-d9cb-469f-a165-70867728950e,chat/completions,chat,,llama-local cloud-fallback,"
    "2,200,,12,48,60,180,1450,true,gateway-7d9f-1-3fa2c1,,\n"
)
_JSONL_EXAMPLE = (
    '{"id":"4b1c0a4e-8f4b-4c51-9b7e-2f3a55d0a1c2","at":"2026-12-06T15:04:05.123000Z",'
    '"key_id":"0f8fad5b-d9cb-469f-a165-70867728950e","endpoint":"chat/completions",'
    '"group":"chat","registry_model_id":null,"instances":["llama-local","cloud-fallback"],'
    '"attempts":2,"status":200,"error_cause":null,"prompt_tokens":12,"completion_tokens":48,'
    '"total_tokens":60,"ttfb_ms":180,"duration_ms":1450,"stream":true,'
    '"replica":"gateway-7d9f-1-3fa2c1","request_body":null,"response_body":null}\n'
)


def request_filters(
    since: Annotated[
        datetime | None, Query(description="Only requests received at or after this time.")
    ] = None,
    until: Annotated[
        datetime | None, Query(description="Only requests received before this time.")
    ] = None,
    key_id: Annotated[uuid.UUID | None, Query(description="Only this client API key's.")] = None,
    group: Annotated[
        str | None, Query(max_length=200, description="Only requests to this model group.")
    ] = None,
    status: Annotated[
        int | None, Query(ge=100, le=599, description="Only this HTTP status (e.g. 503).")
    ] = None,
    status_class: Annotated[
        StatusClass | None, Query(description="Only this class of status (e.g. `5xx`).")
    ] = None,
    error_cause: Annotated[
        str | None,
        Query(max_length=64, description="Only this failure cause (e.g. `model_not_found`)."),
    ] = None,
    registry_model_id: Annotated[
        uuid.UUID | None, Query(description="Only requests to groups following this model.")
    ] = None,
) -> RequestFilters:
    """Return the filters of a listing or an export."""
    return RequestFilters(
        since=since,
        until=until,
        key_id=key_id,
        group=group,
        status=status,
        status_class=status_class,
        error_cause=error_cause,
        registry_model_id=registry_model_id,
    )


Filters = Annotated[RequestFilters, Depends(request_filters)]


@requests.listing(
    "list_requests",
    "List the workspace's logged client requests, newest first",
    problems=(401, 403, 422),
    description="One record per request to `/v1/chat/completions`, `/v1/completions` and "
    "`/v1/embeddings` whose API key was valid, refused ones included. Records reach the log "
    "within about a second (`MODELYARD_GATEWAY_REQUEST_LOG_FLUSH_S`) and stay for "
    "`MODELYARD_GATEWAY_REQUEST_LOG_RETENTION_DAYS` days.",
)
async def list_requests(
    session: SessionDep, principal: Viewer, paging: Paging, filters: Filters
) -> Page[LoggedRequest]:
    """Return one page of the workspace's logged requests."""
    return await service.list_requests(session, principal=principal, filters=filters, params=paging)


@requests.listing(
    "export_requests",
    "Export the workspace's logged client requests as CSV or JSON lines",
    problems=(401, 403, 422),
    subpath="/export",
    description="The same filters as the listing; every match, newest first, streamed.",
    response_class=StreamingResponse,
    responses={
        200: {
            "description": "The matching requests, one per line (CSV with a header line).",
            "content": {
                "text/csv": {"schema": {"type": "string"}, "example": _CSV_EXAMPLE},
                "application/x-ndjson": {"schema": {"type": "string"}, "example": _JSONL_EXAMPLE},
            },
        }
    },
)
async def export_requests(
    request: Request,
    principal: Viewer,
    filters: Filters,
    format: Annotated[ExportFormat, Query(description="`csv` or `jsonl`.")] = "csv",
) -> StreamingResponse:
    """Stream every matching request of the workspace as CSV or JSON lines."""
    lines = service.export_requests(
        request.app.state.sessionmaker, principal=principal, filters=filters, format=format
    )
    return StreamingResponse(
        lines,
        media_type=service.MEDIA_TYPES[format],
        headers={"Content-Disposition": f'attachment; filename="requests.{format}"'},
    )
