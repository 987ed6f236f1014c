"""Rules of model versions: validation of uploads, numbering, immutability, deletion, download."""

from __future__ import annotations

import asyncio
import uuid

import httpx
from sqlalchemy.ext.asyncio import AsyncSession

from modelyard_common.auth import Principal
from modelyard_common.db import utcnow
from modelyard_common.errors import ConflictError, NotFoundError
from modelyard_common.http import StoredResponse, run_idempotent
from modelyard_common.pagination import Page, PageParams
from modelyard_common.row_views import view_of
from modelyard_deployer import db
from modelyard_deployer.access.schemas import AccessLevel
from modelyard_deployer.access.service import (
    require_model_access,
    require_row_access,
)
from modelyard_deployer.artifacts import ArtifactStore, StagedArtifact
from modelyard_deployer.db import (
    Device,
    IdempotencyRecord,
    ModelVersion,
    after_commit,
    after_rollback,
)
from modelyard_deployer.governance.models import get_visible_model, require_open
from modelyard_deployer.settings import DeployerSettings
from modelyard_deployer.versions import repository, schemas
from modelyard_deployer.versions.upload import ReceivedUpload
from modelyard_deployer.versions.validation import CheckedProject, check_project, check_text_fields

_background: set[asyncio.Task[None]] = set()


def storage_key(model_id: uuid.UUID, version_id: uuid.UUID) -> str:
    """Return the artifact store key of a version's zip."""
    return f"{model_id}/{version_id}.zip"


def artifact_path(version_id: uuid.UUID) -> str:
    """Return the API path a version's zip is downloaded from."""
    return f"/v1/versions/{version_id}/artifact"


def to_schema(version: ModelVersion) -> schemas.ModelVersion:
    """Return the API view of a version."""
    return view_of(schemas.ModelVersion, version, artifact_url=artifact_path(version.id))


def _not_found(version_id: uuid.UUID) -> NotFoundError:
    return NotFoundError(f"No version {version_id} you may see in this workspace.")


async def prepare_upload(
    session: AsyncSession,
    *,
    http: httpx.AsyncClient,
    principal: Principal,
    model_id: uuid.UUID,
    authorization: str | None,
) -> None:
    """Check, before any byte is read, that the caller may add a version to an open model."""
    await require_model_access(session, principal, model_id, AccessLevel.editor)
    require_open(
        await get_visible_model(
            session, http=http, principal=principal, model_id=model_id, authorization=authorization
        )
    )


async def create_version(
    session: AsyncSession,
    *,
    store: ArtifactStore,
    principal: Principal,
    model_id: uuid.UUID,
    version_id: uuid.UUID,
    artifact: StagedArtifact,
    project: CheckedProject,
    title: str | None,
    comment: str,
) -> schemas.ModelVersion:
    """Return the new version after storing its zip under its own key; numbered per model."""
    await repository.lock_numbering(session, model_id)
    number = await repository.next_number(session, model_id)
    key = artifact.key
    version = ModelVersion(
        id=version_id,
        workspace=principal.workspace,
        model_id=model_id,
        number=number,
        title=title or f"Version {number}",
        comment=comment,
        manifest=project.manifest.model_dump(mode="json"),
        sha256=artifact.sha256(),
        size_bytes=artifact.size,
        uncompressed_bytes=project.uncompressed_bytes,
        file_count=len(project.members),
        storage_key=key,
        created_by=principal.sub,
        created_at=utcnow(),
    )
    session.add(version)
    await session.flush()
    await artifact.commit()
    # The zip is in place before the row commits; if the commit fails, the zip goes too.
    after_rollback(session, lambda: _delete_later(store, key))
    return to_schema(version)


async def accept_upload(
    session: AsyncSession,
    *,
    upload: ReceivedUpload,
    http: httpx.AsyncClient,
    store: ArtifactStore,
    settings: DeployerSettings,
    principal: Principal,
    model_id: uuid.UUID,
    version_id: uuid.UUID,
    authorization: str | None,
    idempotency_key: str | None,
) -> StoredResponse:
    """Return the created version (or the first one for a retried Idempotency-Key).

    The staged zip (staged under `storage_key(model_id, version_id)`) becomes the version's
    artifact, or is removed whatever goes wrong.
    """
    artifact = upload.artifact
    assert artifact is not None
    kept = False
    try:
        title, comment = check_text_fields(upload.fields)
        # Again, now in the request's transaction: the model may have been archived meanwhile.
        await prepare_upload(
            session, http=http, principal=principal, model_id=model_id, authorization=authorization
        )
        project = await asyncio.to_thread(
            check_project,
            artifact.path,
            manifest_field=upload.fields.get("manifest"),
            settings=settings,
        )
        stored = await run_idempotent(
            session,
            IdempotencyRecord,
            principal=principal,
            operation=f"create_model_version:{model_id}",
            key=idempotency_key,
            # The zip's hash stands for its bytes: a retry must send the same file.
            payload={
                "title": title,
                "comment": comment,
                "manifest": project.manifest.model_dump(mode="json"),
                "sha256": artifact.sha256(),
            },
            create=lambda: create_version(
                session,
                store=store,
                principal=principal,
                model_id=model_id,
                version_id=version_id,
                artifact=artifact,
                project=project,
                title=title,
                comment=comment,
            ),
        )
        kept = not stored.replayed
    finally:
        if not kept:
            await artifact.discard()
    return stored


def _delete_later(store: ArtifactStore, key: str) -> None:
    task = asyncio.get_running_loop().create_task(store.delete(key))
    _background.add(task)
    task.add_done_callback(_background.discard)


async def list_versions(
    session: AsyncSession, *, principal: Principal, model_id: uuid.UUID, params: PageParams
) -> Page[schemas.ModelVersion]:
    """Return one page of a model's versions."""
    await require_model_access(session, principal, model_id)
    rows, cursor = await repository.SORTING.page(
        session, repository.list_statement(workspace=principal.workspace, model_id=model_id), params
    )
    return Page[schemas.ModelVersion](items=[to_schema(row) for row in rows], next_cursor=cursor)


async def visible_version(
    session: AsyncSession, *, principal: Principal, version_id: uuid.UUID, level: AccessLevel
) -> ModelVersion:
    """Return a version the principal may act on at `level` (404 if it may not see it)."""
    version = await repository.get(session, workspace=principal.workspace, version_id=version_id)
    return await require_row_access(
        session, principal, version, level, missing=_not_found(version_id)
    )


async def get_version(
    session: AsyncSession, *, principal: Principal, version_id: uuid.UUID
) -> schemas.ModelVersion:
    """Return one version."""
    version = await visible_version(
        session, principal=principal, version_id=version_id, level=AccessLevel.viewer
    )
    return to_schema(version)


async def delete_version(
    session: AsyncSession, *, store: ArtifactStore, principal: Principal, version_id: uuid.UUID
) -> None:
    """Delete a version and its zip; 409 while a deployment still uses it."""
    version = await visible_version(
        session, principal=principal, version_id=version_id, level=AccessLevel.editor
    )
    if await repository.in_use(session, version.id):
        raise ConflictError(
            f"Version {version.number} is still deployed (or kept for rollback) on a device; "
            "remove those deployments first."
        )
    version.deleted_at = utcnow()
    await session.flush()
    key = version.storage_key
    after_commit(session, lambda: _delete_later(store, key))


async def version_for_download(
    session: AsyncSession,
    *,
    caller: Principal | Device,
    version_id: uuid.UUID,
) -> ModelVersion:
    """Return a version the caller may download: a user with access, or a device it is on."""
    if isinstance(caller, db.Device):
        version = await repository.get(session, workspace=caller.workspace, version_id=version_id)
        if version is None or not await repository.deployed_to(
            session, version_id=version_id, device_id=caller.id
        ):
            raise _not_found(version_id)
        return version
    return await visible_version(
        session, principal=caller, version_id=version_id, level=AccessLevel.viewer
    )
