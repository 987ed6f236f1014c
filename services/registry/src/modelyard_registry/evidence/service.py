"""The rules about evidence items: workspace-scoped links, size-limited files, expiry."""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import AsyncIterator
from datetime import date, timedelta

from sqlalchemy.ext.asyncio import AsyncSession

from modelyard_common.auth import Principal
from modelyard_common.errors import (
    FieldError,
    PayloadTooLargeError,
    UnprocessableError,
    field_error,
    found,
)
from modelyard_common.pagination import PageParams
from modelyard_registry.db import AIModel, AISystem, Evidence
from modelyard_registry.evidence import repository
from modelyard_registry.evidence.schemas import EvidenceCreate, EvidenceRead
from modelyard_registry.history.service import authorship, new_revision, record_change

RESOURCE = "evidence"


def to_read(item: Evidence) -> EvidenceRead:
    """Return the API view of an evidence row."""
    return EvidenceRead.model_validate(item, from_attributes=True)


async def _check_subject(
    session: AsyncSession,
    principal: Principal,
    model: type[AIModel] | type[AISystem],
    ident: uuid.UUID,
) -> None:
    row: AIModel | AISystem | None = await session.get(model, ident)
    if row is None or row.workspace != principal.workspace:
        field = "system_id" if model is AISystem else "model_id"
        raise UnprocessableError(
            f"No {field.removesuffix('_id')} {ident} in this workspace.",
            errors=[field_error(["body", field], message="unknown id", type="reference")],
        )


async def create_evidence(
    session: AsyncSession, *, principal: Principal, body: EvidenceCreate
) -> EvidenceRead:
    """Return the new evidence item, after checking what it is about is in the workspace."""
    if body.system_id:
        await _check_subject(session, principal, AISystem, body.system_id)
    if body.model_id:
        await _check_subject(session, principal, AIModel, body.model_id)
    item = Evidence(
        **authorship(principal),
        type=body.type.value,
        title=body.title,
        url=str(body.url) if body.url else None,
        owner=body.owner,
        expires_on=body.expires_on,
        system_id=body.system_id,
        model_id=body.model_id,
    )
    session.add(item)
    await session.flush()
    await session.refresh(item)
    await _audit(session, principal, item, "created")
    return to_read(item)


async def _audit(session: AsyncSession, principal: Principal, item: Evidence, action: str) -> None:
    await record_change(
        session,
        principal=principal,
        resource_type=RESOURCE,
        resource_id=item.id,
        action=action,
        changes={
            "title": {"old": None, "new": item.title},
            "file_sha256": {"old": None, "new": item.file_sha256},
        },
    )


async def get_evidence(
    session: AsyncSession,
    *,
    principal: Principal,
    evidence_id: uuid.UUID,
    with_content: bool = False,
) -> Evidence:
    """Return the workspace's evidence item, or raise 404."""
    item = await repository.get(
        session, workspace=principal.workspace, evidence_id=evidence_id, with_content=with_content
    )
    return found(item, f"No evidence {evidence_id} in this workspace.")


async def attach_file(
    session: AsyncSession,
    *,
    principal: Principal,
    evidence_id: uuid.UUID,
    file_name: str,
    content_type: str,
    chunks: AsyncIterator[bytes],
    max_bytes: int,
) -> EvidenceRead:
    """Return the item with its file replaced; 413 past `max_bytes` (nothing is kept then)."""
    item = found(
        await repository.get(
            session, workspace=principal.workspace, evidence_id=evidence_id, for_update=True
        ),
        f"No evidence {evidence_id} in this workspace.",
    )
    digest, parts, size = hashlib.sha256(), [], 0
    async for chunk in chunks:
        size += len(chunk)
        if size > max_bytes:
            raise PayloadTooLargeError(f"An evidence file may be at most {max_bytes} bytes.")
        digest.update(chunk)
        parts.append(chunk)
    if size == 0:
        raise UnprocessableError(
            "The file is empty.",
            errors=[FieldError(loc=["body"], field="body", message="empty file", type="empty")],
        )
    item.file_content = b"".join(parts)
    item.file_name, item.file_size, item.file_sha256 = file_name, size, digest.hexdigest()
    item.content_type = content_type
    new_revision(item, principal)
    await session.flush()
    await _audit(session, principal, item, "file_attached")
    return to_read(item)


async def delete_evidence(
    session: AsyncSession, *, principal: Principal, evidence_id: uuid.UUID
) -> None:
    """Delete an evidence item; obligations that cited it keep their status, lose the link."""
    item = await get_evidence(session, principal=principal, evidence_id=evidence_id)
    await _audit(session, principal, item, "deleted")
    await session.delete(item)
    await session.flush()


async def list_evidence(
    session: AsyncSession,
    *,
    principal: Principal,
    filters: repository.EvidenceFilters,
    expiring_within_days: int | None,
    params: PageParams,
) -> tuple[list[EvidenceRead], str | None]:
    """Return one page of evidence; with `expiring_within_days`, only what expires by then."""
    if expiring_within_days is not None:
        filters = repository.EvidenceFilters(
            system_id=filters.system_id,
            model_id=filters.model_id,
            type=filters.type,
            expires_by=date.today() + timedelta(days=expiring_within_days),
        )
    rows, cursor = await repository.list_page(
        session, workspace=principal.workspace, filters=filters, params=params
    )
    return [to_read(r) for r in rows], cursor
