"""SQL of model versions."""

from __future__ import annotations

import uuid

from sqlalchemy import ColumnElement, Select, exists, func, or_, select, text
from sqlalchemy.ext.asyncio import AsyncSession

from modelyard_common.sorting import Sorting
from modelyard_deployer.db import Deployment, ModelVersion

# What `sort` may name, and the column each orders by.
SORTING = Sorting(
    {"number": ModelVersion.number, "created_at": ModelVersion.created_at},
    id_column=ModelVersion.id,
)
SORTS = SORTING.names


async def lock_numbering(session: AsyncSession, model_id: uuid.UUID) -> None:
    """Serialise version numbering of one model until the transaction ends."""
    await session.execute(
        text("SELECT pg_advisory_xact_lock(hashtext(:k))"), {"k": f"deployer.versions:{model_id}"}
    )


async def next_number(session: AsyncSession, model_id: uuid.UUID) -> int:
    """Return the next version number of a model (deleted versions keep theirs)."""
    highest = await session.scalar(
        select(func.max(ModelVersion.number)).where(ModelVersion.model_id == model_id)
    )
    return (highest or 0) + 1


async def get(
    session: AsyncSession, *, workspace: str, version_id: uuid.UUID
) -> ModelVersion | None:
    """Return a live (not deleted) version of a workspace."""
    return await session.scalar(
        select(ModelVersion).where(
            ModelVersion.workspace == workspace,
            ModelVersion.id == version_id,
            ModelVersion.deleted_at.is_(None),
        )
    )


async def get_any(session: AsyncSession, version_id: uuid.UUID) -> ModelVersion | None:
    """Return a version by id, deleted or not (to describe history)."""
    return await session.scalar(select(ModelVersion).where(ModelVersion.id == version_id))


async def get_live(session: AsyncSession, version_id: uuid.UUID | None) -> ModelVersion | None:
    """Return a version by id unless it is deleted (None for no id: a rollback target)."""
    if version_id is None:
        return None
    version = await get_any(session, version_id)
    return version if version is not None and version.deleted_at is None else None


def list_statement(*, workspace: str, model_id: uuid.UUID) -> Select[ModelVersion]:
    """Return the query of a model's live versions."""
    return select(ModelVersion).where(
        ModelVersion.workspace == workspace,
        ModelVersion.model_id == model_id,
        ModelVersion.deleted_at.is_(None),
    )


def _references(version_id: uuid.UUID) -> ColumnElement[bool]:
    return or_(
        Deployment.version_id == version_id,
        Deployment.previous_version_id == version_id,
        Deployment.running_version_id == version_id,
    )


async def in_use(session: AsyncSession, version_id: uuid.UUID) -> bool:
    """Return whether a deployment still wants, runs, or may roll back to the version."""
    still_there = or_(
        Deployment.desired_state != "removed",
        Deployment.state.not_in(("removed", "failed", "cancelled")),
    )
    return bool(await session.scalar(select(exists().where(_references(version_id), still_there))))


async def deployed_to(
    session: AsyncSession, *, version_id: uuid.UUID, device_id: uuid.UUID
) -> bool:
    """Return whether the version is (or may be rolled back to) on a device's live deployment."""
    return bool(
        await session.scalar(
            select(
                exists().where(
                    Deployment.device_id == device_id,
                    Deployment.desired_state != "removed",
                    or_(
                        Deployment.version_id == version_id,
                        Deployment.previous_version_id == version_id,
                    ),
                )
            )
        )
    )
