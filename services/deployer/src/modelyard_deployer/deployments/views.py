"""API views of deployments and of their history entries."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy.ext.asyncio import AsyncSession

from modelyard_common.http import make_etag
from modelyard_common.row_views import view_of
from modelyard_deployer.db import Deployment, DeploymentEvent, DeploymentHealth
from modelyard_deployer.deployments import repository, schemas


async def to_views(session: AsyncSession, rows: Sequence[Deployment]) -> list[schemas.Deployment]:
    """Return the API views of deployments (names, numbers and health in four queries)."""
    numbers = await repository.version_numbers(session, (d.version_id for d in rows))
    health = await repository.health_of(session, (d.id for d in rows))
    names = await repository.device_names(session, (d.device_id for d in rows))
    models = await repository.model_names(session, (d.model_id for d in rows))
    return [
        view_of(
            schemas.Deployment,
            d,
            model_name=models.get(d.model_id),
            version_number=numbers[d.version_id],
            device_name=names.get(d.device_id, ""),
            health=_health_view(health.get(d.id)),
            etag=make_etag(d.revision),
        )
        for d in rows
    ]


async def to_view(session: AsyncSession, deployment: Deployment) -> schemas.Deployment:
    """Return the API view of one deployment."""
    await session.flush()
    await session.refresh(deployment)
    return (await to_views(session, [deployment]))[0]


def _health_view(row: DeploymentHealth | None) -> schemas.DeploymentHealth | None:
    return schemas.DeploymentHealth.model_validate(row, from_attributes=True) if row else None


def history_view(entry: DeploymentEvent) -> schemas.HistoryEntry:
    """Return the API view of a history entry."""
    return schemas.HistoryEntry.model_validate(entry, from_attributes=True)
