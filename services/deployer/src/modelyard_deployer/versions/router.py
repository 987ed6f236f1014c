"""Routes of model versions: upload, list, read, delete, download."""

from __future__ import annotations

import uuid
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request, Response, status
from fastapi.responses import JSONResponse, StreamingResponse

from modelyard_common.auth import Viewer
from modelyard_common.db import SessionDep
from modelyard_common.http import IdempotencyKey, created_response
from modelyard_common.pagination import Page, PageParams, page_params
from modelyard_common.routes import Routes, no_content
from modelyard_deployer.deps import RegistryHttpDep, SessionmakerDep, SettingsDep, StoreDep
from modelyard_deployer.device_tokens import ArtifactCaller
from modelyard_deployer.versions import repository, service
from modelyard_deployer.versions.schemas import ModelVersion
from modelyard_deployer.versions.upload import receive_upload
from modelyard_deployer.web import AuthorizationHeader, RangeNotSatisfiableError, parse_range

model_router = APIRouter(prefix="/v1/models/{model_id}/versions", tags=["versions"])
router = APIRouter(prefix="/v1/versions", tags=["versions"])
model_versions = Routes(model_router)
versions = Routes(router, item="/{version_id}")

VersionPage = Annotated[PageParams, Depends(page_params("-number", repository.SORTS))]

_UPLOAD_SCHEMA: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "content": {
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "required": ["file"],
                    "properties": {
                        "file": {
                            "type": "string",
                            "format": "binary",
                            "description": "The AI project as a .zip.",
                        },
                        "manifest": {
                            "type": "string",
                            "description": "The run manifest as JSON; if absent, modelyard.json "
                            "or modelyard.yaml at the zip's root is used.",
                        },
                        "title": {"type": "string", "maxLength": 30},
                        "comment": {"type": "string", "maxLength": 512},
                    },
                }
            }
        },
    }
}


@model_versions.creating(
    "create_model_version",
    "Upload a new version of a model (zip + run manifest)",
    problems=(400, 401, 403, 404, 409, 413, 422, 503),
    description="The zip is streamed to the artifact store while its size and SHA-256 are "
    "computed, then checked without extracting it: readable, no absolute or `..` paths, no "
    "links, size and compression ratio under limits, main file (and Dockerfile) present. A bad "
    "zip is answered 422 saying what is wrong, and nothing is stored.",
    response_model=ModelVersion,
    openapi_extra=_UPLOAD_SCHEMA,
)
async def create_model_version(
    model_id: uuid.UUID,
    request: Request,
    session: SessionDep,
    principal: Viewer,
    http: RegistryHttpDep,
    store: StoreDep,
    settings: SettingsDep,
    sessionmaker: SessionmakerDep,
    authorization: AuthorizationHeader,
    idempotency_key: IdempotencyKey = None,
) -> JSONResponse:
    # Checked before any byte is read, in a short transaction of its own: the request's session
    # must not hold a pooled connection for the minutes a large upload can take.
    async with sessionmaker() as check_session, check_session.begin():
        await service.prepare_upload(
            check_session,
            http=http,
            principal=principal,
            model_id=model_id,
            authorization=authorization,
        )
    # The id is chosen before the first byte: the zip is streamed straight to its final key.
    version_id = uuid.uuid4()
    upload = await receive_upload(
        request,
        store=store,
        key=service.storage_key(model_id, version_id),
        max_bytes=settings.max_upload_bytes,
        field_limits={"manifest": settings.max_manifest_bytes},
    )
    stored = await service.accept_upload(
        session,
        upload=upload,
        http=http,
        store=store,
        settings=settings,
        principal=principal,
        model_id=model_id,
        version_id=version_id,
        authorization=authorization,
        idempotency_key=idempotency_key,
    )
    return created_response(stored, location=f"/v1/versions/{stored.body['id']}")


@model_versions.listing(
    "list_model_versions", "List the versions of a model", problems=(401, 404, 422)
)
async def list_model_versions(
    model_id: uuid.UUID, session: SessionDep, principal: Viewer, params: VersionPage
) -> Page[ModelVersion]:
    return await service.list_versions(
        session, principal=principal, model_id=model_id, params=params
    )


@versions.reading("get_model_version", "Get one model version", problems=(401, 404))
async def get_model_version(
    version_id: uuid.UUID, session: SessionDep, principal: Viewer
) -> ModelVersion:
    return await service.get_version(session, principal=principal, version_id=version_id)


@versions.deleting(
    "delete_model_version",
    "Delete a model version no device runs",
    problems=(401, 403, 404, 409),
)
async def delete_model_version(
    version_id: uuid.UUID, session: SessionDep, principal: Viewer, store: StoreDep
) -> Response:
    await service.delete_version(session, store=store, principal=principal, version_id=version_id)
    return no_content()


@versions.reading(
    "download_model_version",
    "Download a version's zip (range requests supported)",
    problems=(401, 404, 416),
    subpath="/artifact",
    description="For users with access to the model, and for devices the version is deployed "
    "to (device token). Send `Range: bytes=N-` to resume an interrupted download.",
    response_class=StreamingResponse,
    responses={
        200: {"content": {"application/zip": {}}, "description": "The whole zip"},
        206: {"content": {"application/zip": {}}, "description": "The requested byte range"},
    },
)
async def download_model_version(
    version_id: uuid.UUID,
    request: Request,
    session: SessionDep,
    store: StoreDep,
    caller: ArtifactCaller,
) -> Response:
    version = await service.version_for_download(session, caller=caller, version_id=version_id)
    size = await store.size(version.storage_key)
    etag = f'"{version.sha256}"'
    headers = {
        "Accept-Ranges": "bytes",
        "ETag": etag,
        "Content-Disposition": f'attachment; filename="{version.model_id}-v{version.number}.zip"',
        "X-Checksum-Sha256": version.sha256,
    }
    range_header = request.headers.get("range")
    if_range = request.headers.get("if-range")
    if if_range is not None and if_range.strip() != etag:
        range_header = None  # the client's partial copy is of other bytes: send them all
    try:
        byte_range = parse_range(range_header, size)
    except ValueError as exc:
        raise RangeNotSatisfiableError(
            f"The requested range lies outside the file's {size} bytes; ask for a range within "
            f"bytes 0-{max(size - 1, 0)}, or for the whole file.",
            headers={"Accept-Ranges": "bytes", "ETag": etag, "Content-Range": f"bytes */{size}"},
            size=size,
        ) from exc
    start, end = byte_range if byte_range is not None else (0, size - 1)
    length = end - start + 1 if size else 0
    headers["Content-Length"] = str(length)
    if byte_range is not None:
        headers["Content-Range"] = f"bytes {start}-{end}/{size}"
    return StreamingResponse(
        store.read(version.storage_key, start, length),
        status_code=status.HTTP_206_PARTIAL_CONTENT if byte_range else status.HTTP_200_OK,
        media_type="application/zip",
        headers=headers,
    )
