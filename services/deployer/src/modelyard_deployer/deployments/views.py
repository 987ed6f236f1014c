"""API views of deployments and of their history entries."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy.ext.asyncio import AsyncSession

from modelyard_common.contracts import CommandAction, DeploymentState, DesiredState
from modelyard_common.http import make_etag
from modelyard_deployer.db import Deployment, DeploymentEvent
from modelyard_deployer.deployments import repository, schemas


async def to_views(session: AsyncSession, rows: Sequence[Deployment]) -> list[schemas.Deployment]:
    """Return the API views of deployments (names and numbers loaded in three queries)."""
    numbers = await repository.version_numbers(session, (d.version_id for d in rows))
    names = await repository.device_names(session, (d.device_id for d in rows))
    models = await repository.model_names(session, (d.model_id for d in rows))
    return [
        schemas.Deployment(
            id=d.id,
            model_id=d.model_id,
            model_name=models.get(d.model_id),
            version_id=d.version_id,
            version_number=numbers[d.version_id],
            previous_version_id=d.previous_version_id,
            running_version_id=d.running_version_id,
            device_id=d.device_id,
            device_name=names.get(d.device_id, ""),
            desired_state=DesiredState(d.desired_state),
            state=DeploymentState(d.state),
            state_message=d.state_message,
            generation=d.generation,
            base_url=d.base_url,
            policy_warning=d.policy_warning,
            created_by=d.created_by,
            created_at=d.created_at,
            updated_at=d.updated_at,
            etag=make_etag(d.revision),
        )
        for d in rows
    ]


async def to_view(session: AsyncSession, deployment: Deployment) -> schemas.Deployment:
    """Return the API view of one deployment."""
    await session.flush()
    await session.refresh(deployment)
    return (await to_views(session, [deployment]))[0]


def history_view(entry: DeploymentEvent) -> schemas.HistoryEntry:
    """Return the API view of a history entry."""
    return schemas.HistoryEntry(
        id=entry.id,
        deployment_id=entry.deployment_id,
        model_id=entry.model_id,
        device_id=entry.device_id,
        version_id=entry.version_id,
        source=entry.source,
        action=CommandAction(entry.action) if entry.action else None,
        state=DeploymentState(entry.state),
        message=entry.message,
        log_tail=entry.log_tail,
        generation=entry.generation,
        sequence=entry.sequence,
        applied=entry.applied,
        actor=entry.actor,
        occurred_at=entry.occurred_at,
        recorded_at=entry.recorded_at,
    )
