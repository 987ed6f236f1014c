"""Rules of model versions: validation of uploads, numbering, immutability, deletion, download."""

from __future__ import annotations

import asyncio
import json
import uuid
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import yaml
from pydantic import ValidationError
from sqlalchemy.ext.asyncio import AsyncSession

from modelyard_common.archive import ArchiveLimits, UnsafeArchiveError, inspect_archive
from modelyard_common.auth import Principal
from modelyard_common.db import utcnow
from modelyard_common.errors import ConflictError, FieldError, NotFoundError, UnprocessableError
from modelyard_common.http import StoredResponse, run_idempotent
from modelyard_common.inputs import reject_nul
from modelyard_common.manifest import MANIFEST_FILENAMES, Manifest, parse_manifest_document
from modelyard_common.pagination import Page, PageParams, paginate
from modelyard_deployer import db
from modelyard_deployer.access.schemas import AccessLevel
from modelyard_deployer.access.service import require_access
from modelyard_deployer.artifacts import ArtifactStore, StagedArtifact
from modelyard_deployer.db import (
    Device,
    IdempotencyRecord,
    ModelVersion,
    after_commit,
    after_rollback,
)
from modelyard_deployer.governance.models import require_open_model
from modelyard_deployer.settings import DeployerSettings
from modelyard_deployer.versions import repository, schemas
from modelyard_deployer.versions.upload import ReceivedUpload

_background: set[asyncio.Task[None]] = set()


def storage_key(model_id: uuid.UUID, version_id: uuid.UUID) -> str:
    """Return the artifact store key of a version's zip."""
    return f"{model_id}/{version_id}.zip"


def artifact_path(version_id: uuid.UUID) -> str:
    """Return the API path a version's zip is downloaded from."""
    return f"/v1/versions/{version_id}/artifact"


def to_schema(version: ModelVersion) -> schemas.ModelVersion:
    """Return the API view of a version."""
    return schemas.ModelVersion(
        id=version.id,
        model_id=version.model_id,
        number=version.number,
        title=version.title,
        comment=version.comment,
        manifest=Manifest.model_validate(version.manifest),
        sha256=version.sha256,
        size_bytes=version.size_bytes,
        uncompressed_bytes=version.uncompressed_bytes,
        file_count=version.file_count,
        artifact_url=artifact_path(version.id),
        created_by=version.created_by,
        created_at=version.created_at,
    )


def _not_found(version_id: uuid.UUID) -> NotFoundError:
    return NotFoundError(f"No version {version_id} you may see in this workspace.")


def _unprocessable(field: str, message: str, kind: str) -> UnprocessableError:
    return UnprocessableError(
        message,
        errors=[FieldError(loc=["body", field], field=field, message=message, type=kind)],
    )


@dataclass(frozen=True)
class CheckedProject:
    """What validation learnt about an uploaded zip."""

    manifest: Manifest
    members: frozenset[str]
    uncompressed_bytes: int


def archive_limits(settings: DeployerSettings) -> ArchiveLimits:
    """Return the limits an uploaded zip must stay under."""
    return ArchiveLimits(
        max_total_bytes=settings.max_uncompressed_bytes,
        max_member_bytes=settings.max_uncompressed_bytes,
        max_members=settings.max_archive_members,
        max_ratio=settings.max_compression_ratio,
    )


def _manifest_from_form(raw: str) -> Manifest:
    try:
        document = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise _unprocessable(
            "manifest", f"The manifest is not valid JSON ({exc}).", "json"
        ) from exc
    except (RecursionError, ValueError) as exc:
        raise _too_deep("manifest", "The manifest") from exc
    return _validate_manifest(document, ["body", "manifest"])


def _too_deep(field: str, what: str) -> UnprocessableError:
    # Whatever limit the parser hit (nesting, size), the answer names the manifest: a
    # manifest is a flat document a few levels deep, never a reason for a 5xx.
    return _unprocessable(
        field, f"{what} is nested too deeply or too large to read as a run manifest.", "too_deep"
    )


def _validate_manifest(document: Any, loc: list[str | int]) -> Manifest:
    try:
        reject_nul(document, loc)
        return Manifest.model_validate(document)
    except RecursionError as exc:
        raise _too_deep("manifest", "The manifest") from exc
    except ValidationError as exc:
        errors = []
        for err in exc.errors():
            where = [*loc, *(p if isinstance(p, int) else str(p) for p in err["loc"])]
            errors.append(
                FieldError(
                    loc=where,
                    field=".".join(str(p) for p in where[1:]),
                    message=err["msg"],
                    type=err["type"],
                )
            )
        raise UnprocessableError("The run manifest is invalid.", errors=errors) from exc


def _manifest_from_zip(path: Path, members: frozenset[str], max_bytes: int) -> Manifest:
    name = next((n for n in MANIFEST_FILENAMES if n in members), None)
    if name is None:
        raise _unprocessable(
            "manifest",
            "No run manifest: send the `manifest` field or put modelyard.json or modelyard.yaml "
            "at the root of the zip.",
            "missing",
        )
    with zipfile.ZipFile(path) as archive:
        info = archive.getinfo(name)
        if info.file_size > max_bytes:
            raise _unprocessable(
                "manifest", f"{name} is larger than {max_bytes} bytes.", "too_long"
            )
        try:
            # Bounded: zipfile stops at the member's declared size and checks its CRC.
            raw = archive.read(info)
        except (zipfile.BadZipFile, EOFError, OSError) as exc:
            raise _unprocessable(
                "file", f"{name} is corrupt in the zip ({exc}).", "corrupt"
            ) from exc
    try:
        document = parse_manifest_document(name, raw)
    except RecursionError as exc:
        raise _too_deep("manifest", name) from exc
    except (ValueError, UnicodeDecodeError, yaml.YAMLError) as exc:
        raise _unprocessable(
            "manifest", f"{name} is unreadable ({str(exc)[:500]}).", "parse"
        ) from exc
    return _validate_manifest(document, ["body", "file", name])


def check_project(
    path: Path, *, manifest_field: str | None, settings: DeployerSettings
) -> CheckedProject:
    """Return the checked manifest and contents of a zip, without extracting it (blocking).

    Raises a 422 naming what is wrong: unsafe or unreadable zip, bad manifest, missing files.
    """
    try:
        summary = inspect_archive(path, archive_limits(settings))
    except UnsafeArchiveError as exc:
        raise _unprocessable("file", str(exc), "unsafe_archive") from exc
    members = frozenset(summary.members)
    if manifest_field is not None and manifest_field.strip():
        manifest = _manifest_from_form(manifest_field)
    else:
        manifest = _manifest_from_zip(path, members, settings.max_manifest_bytes)
    if manifest.main not in members:
        raise _unprocessable(
            "file",
            f"The manifest's main file {manifest.main!r} is not in the zip "
            "(paths are relative to the zip's root).",
            "missing_main",
        )
    if manifest.dockerfile and "Dockerfile" not in members:
        raise _unprocessable(
            "file",
            "The manifest says `dockerfile: true` but the zip has no Dockerfile at its root.",
            "missing_dockerfile",
        )
    return CheckedProject(
        manifest=manifest, members=members, uncompressed_bytes=summary.total_bytes
    )


def check_text_fields(fields: dict[str, str]) -> tuple[str | None, str]:
    """Return the upload's title (None: default) and comment; 422 when too long."""
    reject_nul(fields, ["body"])
    title = fields.get("title")
    if title is not None:
        title = title.strip() or None
    if title is not None and len(title) > schemas.TITLE_MAX:
        raise _unprocessable(
            "title", f"The title has at most {schemas.TITLE_MAX} characters.", "string_too_long"
        )
    comment = fields.get("comment", "")
    if len(comment) > schemas.COMMENT_MAX:
        raise _unprocessable(
            "comment",
            f"The comment has at most {schemas.COMMENT_MAX} characters.",
            "string_too_long",
        )
    return title, comment


async def prepare_upload(
    session: AsyncSession,
    *,
    http: httpx.AsyncClient,
    principal: Principal,
    model_id: uuid.UUID,
    authorization: str | None,
) -> None:
    """Check, before any byte is read, that the caller may add a version to an open model."""
    await require_access(
        session,
        principal,
        model_id,
        AccessLevel.editor,
        not_found=f"No model {model_id} you may see in this workspace.",
    )
    await require_open_model(
        session, http=http, principal=principal, model_id=model_id, authorization=authorization
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
    await require_access(
        session,
        principal,
        model_id,
        AccessLevel.viewer,
        not_found=f"No model {model_id} you may see in this workspace.",
    )
    rows, cursor = await paginate(
        session,
        repository.list_statement(workspace=principal.workspace, model_id=model_id),
        params=params,
        columns=repository.SORT_COLUMNS,
        id_column=ModelVersion.id,
    )
    return Page[schemas.ModelVersion](items=[to_schema(row) for row in rows], next_cursor=cursor)


async def visible_version(
    session: AsyncSession, *, principal: Principal, version_id: uuid.UUID, level: AccessLevel
) -> ModelVersion:
    """Return a version the principal may act on at `level` (404 if it may not see it)."""
    version = await repository.get(session, workspace=principal.workspace, version_id=version_id)
    if version is None:
        raise _not_found(version_id)
    await require_access(
        session, principal, version.model_id, level, not_found=str(_not_found(version_id))
    )
    return version


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
