"""HTTP routes of evidence items: thin, one service call each."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Depends, Header, Query, Request, Response

from modelyard_common.auth import Editor, Viewer
from modelyard_common.db import SessionDep
from modelyard_common.errors import NotFoundError
from modelyard_common.pagination import Page, PageParams, page_params
from modelyard_common.routes import Routes
from modelyard_registry.deps import AUTH_PROBLEMS, SettingsDep, creates
from modelyard_registry.downloads import BINARY, download, download_responses
from modelyard_registry.evidence import service
from modelyard_registry.evidence.repository import SORT_COLUMNS, EvidenceFilters
from modelyard_registry.evidence.schemas import EvidenceCreate, EvidenceRead, EvidenceType, FileName

router = APIRouter(prefix="/v1/evidence", tags=["evidence"])
evidence = Routes(router, item="/{evidence_id}")
EvidencePage = Annotated[PageParams, Depends(page_params("created_at", list(SORT_COLUMNS)))]


async def evidence_filters(
    system_id: uuid.UUID | None = None,
    model_id: uuid.UUID | None = None,
    type: EvidenceType | None = None,
) -> EvidenceFilters:
    return EvidenceFilters(
        system_id=system_id, model_id=model_id, type=type.value if type else None
    )


@evidence.listing(
    "list_evidence",
    "List evidence items; `expiring_within_days` lists what expires soon (or has)",
    problems=(*AUTH_PROBLEMS, 422),
)
async def list_evidence(
    session: SessionDep,
    principal: Viewer,
    params: EvidencePage,
    filters: Annotated[EvidenceFilters, Depends(evidence_filters)],
    expiring_within_days: Annotated[int | None, Query(ge=0, le=3650)] = None,
) -> Page[EvidenceRead]:
    items, cursor = await service.list_evidence(
        session,
        principal=principal,
        filters=filters,
        expiring_within_days=expiring_within_days,
        params=params,
    )
    return Page(items=items, next_cursor=cursor)


@creates.route(
    evidence,
    "create_evidence",
    "Record an evidence item (a link; attach a file with PUT .../file)",
    problems=(*AUTH_PROBLEMS, 422),
    response_model=EvidenceRead,
    location="/v1/evidence/{id}",
)
async def create_evidence(
    session: SessionDep, principal: Editor, body: EvidenceCreate
) -> EvidenceRead:
    return await service.create_evidence(session, principal=principal, body=body)


@evidence.reading("get_evidence", "Get one evidence item", problems=(*AUTH_PROBLEMS, 404))
async def get_evidence(
    session: SessionDep, principal: Viewer, evidence_id: uuid.UUID
) -> EvidenceRead:
    return service.to_read(
        await service.get_evidence(session, principal=principal, evidence_id=evidence_id)
    )


@evidence.deleting("delete_evidence", "Delete an evidence item", problems=(*AUTH_PROBLEMS, 404))
async def delete_evidence(session: SessionDep, principal: Editor, evidence_id: uuid.UUID) -> None:
    await service.delete_evidence(session, principal=principal, evidence_id=evidence_id)


@evidence.route(
    "PUT",
    True,
    "put_evidence_file",
    "Attach (or replace) the evidence file: the request body is the file",
    problems=(*AUTH_PROBLEMS, 404, 413, 422),
    subpath="/file",
    openapi_extra={
        "requestBody": {"required": True, "content": {"application/octet-stream": BINARY}}
    },
)
async def put_evidence_file(
    request: Request,
    session: SessionDep,
    principal: Editor,
    settings: SettingsDep,
    evidence_id: uuid.UUID,
    filename: Annotated[FileName, Query(description="The file's name, for downloads.")],
    content_type: Annotated[str, Header(max_length=200)] = "application/octet-stream",
) -> EvidenceRead:
    return await service.attach_file(
        session,
        principal=principal,
        evidence_id=evidence_id,
        file_name=filename,
        content_type=content_type,
        chunks=request.stream(),
        max_bytes=settings.evidence_max_bytes,
    )


@evidence.reading(
    "get_evidence_file",
    "Download the evidence file",
    problems=(*AUTH_PROBLEMS, 404),
    subpath="/file",
    response_class=Response,
    responses=download_responses("application/octet-stream"),
)
async def get_evidence_file(
    session: SessionDep, principal: Viewer, evidence_id: uuid.UUID
) -> Response:
    item = await service.get_evidence(
        session, principal=principal, evidence_id=evidence_id, with_content=True
    )
    if item.file_content is None:
        raise NotFoundError("This evidence item has no file; it may be a link (see `url`).")
    return download(
        item.file_content,
        media_type=item.content_type or "application/octet-stream",
        filename=item.file_name or "evidence",
        headers={"ETag": f'"{item.file_sha256}"', "X-Content-Type-Options": "nosniff"},
    )
