"""SQL of deployments and their history."""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any, TypeVar

from sqlalchemy import ColumnElement, Select, select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import InstrumentedAttribute

from modelyard_common.contracts import CommandAction
from modelyard_common.db import utcnow, workspace_row
from modelyard_common.sorting import Sorting
from modelyard_deployer.db import (
    Deployment,
    DeploymentEvent,
    DeploymentHealth,
    Device,
    ModelVersion,
    RegistryModel,
)

T = TypeVar("T")
R = TypeVar("R")

# What `sort` may name, and the column each orders by (history: in the order recorded).
SORTING = Sorting(
    {"created_at": Deployment.created_at, "updated_at": Deployment.updated_at},
    id_column=Deployment.id,
)
SORTS = SORTING.names
HISTORY_SORTING = Sorting({"recorded_at": DeploymentEvent.id}, id_column=DeploymentEvent.id)
HISTORY_SORTS = HISTORY_SORTING.names


async def get(
    session: AsyncSession, *, workspace: str, deployment_id: uuid.UUID, for_update: bool = False
) -> Deployment | None:
    """Return a deployment of a workspace, optionally locked until the transaction ends."""
    return await workspace_row(
        session, Deployment, workspace=workspace, row_id=deployment_id, for_update=for_update
    )


async def model_of(
    session: AsyncSession, *, workspace: str, deployment_id: uuid.UUID
) -> uuid.UUID | None:
    """Return the model of a deployment of a workspace (read without locking it)."""
    return await session.scalar(
        select(Deployment.model_id).where(
            Deployment.workspace == workspace, Deployment.id == deployment_id
        )
    )


async def get_for_report(session: AsyncSession, deployment_id: uuid.UUID) -> Deployment | None:
    """Return a deployment by id alone, locked: reports of one deployment apply one at a time."""
    return await session.scalar(
        select(Deployment).where(Deployment.id == deployment_id).with_for_update()
    )


async def live_on_devices(
    session: AsyncSession, *, device_ids: Sequence[uuid.UUID], model_id: uuid.UUID
) -> dict[uuid.UUID, Deployment]:
    """Return the live deployments of a model on each of the devices, by device, locked."""
    if not device_ids:
        return {}
    rows = await session.scalars(
        select(Deployment)
        .where(
            Deployment.device_id.in_(device_ids),
            Deployment.model_id == model_id,
            Deployment.desired_state != "removed",
        )
        .with_for_update()
    )
    return {row.device_id: row for row in rows}


async def running_of_model(
    session: AsyncSession, *, workspace: str, model_id: uuid.UUID
) -> list[tuple[Deployment, Device]]:
    """Return the model's deployments desired running, with their devices, locked, by id."""
    rows = await session.execute(
        select(Deployment, Device)
        .join(Device, Device.id == Deployment.device_id)
        .where(
            Deployment.workspace == workspace,
            Deployment.model_id == model_id,
            Deployment.desired_state == "running",
            Device.revoked_at.is_(None),
        )
        .order_by(Deployment.id)
        .with_for_update(of=Deployment)
    )
    return [(deployment, device) for deployment, device in rows.all()]


async def models_judged_since(
    session: AsyncSession, *, workspace: str, since: datetime
) -> list[uuid.UUID]:
    """Return the models of a workspace with a deployment desired running and let run since."""
    rows = await session.scalars(
        select(Deployment.model_id)
        .where(
            Deployment.workspace == workspace,
            Deployment.desired_state == "running",
            Deployment.run_judged_at >= since,
        )
        .distinct()
        .order_by(Deployment.model_id)
    )
    return list(rows.all())


async def reload(session: AsyncSession, ids: Sequence[uuid.UUID]) -> None:
    """Read the deployments back after a flush (server-set columns), in one query."""
    if ids:
        await session.execute(
            select(Deployment)
            .where(Deployment.id.in_(ids))
            .execution_options(populate_existing=True)
        )


def _where_given(
    stmt: Select[R], *filters: tuple[InstrumentedAttribute[Any], object | None]
) -> Select[R]:
    """Return `stmt` narrowed to rows whose column equals each given value (None: any)."""
    for column, value in filters:
        if value is not None:
            stmt = stmt.where(column == value)
    return stmt


def list_statement(
    *,
    workspace: str,
    visible: ColumnElement[bool],
    model_id: uuid.UUID | None = None,
    device_id: uuid.UUID | None = None,
    version_id: uuid.UUID | None = None,
    state: str | None = None,
    desired_state: str | None = None,
    include_removed: bool = True,
) -> Select[Deployment]:
    """Return the query of a workspace's visible deployments matching every filter."""
    stmt = _where_given(
        select(Deployment).where(Deployment.workspace == workspace, visible),
        (Deployment.model_id, model_id),
        (Deployment.device_id, device_id),
        (Deployment.version_id, version_id),
        (Deployment.state, state),
        (Deployment.desired_state, desired_state),
    )
    if not include_removed:
        stmt = stmt.where(
            ~((Deployment.desired_state == "removed") & (Deployment.state == "removed"))
        )
    return stmt


def history_statement(
    *,
    workspace: str,
    deployment_id: uuid.UUID | None = None,
    model_id: uuid.UUID | None = None,
    device_id: uuid.UUID | None = None,
    source: str | None = None,
) -> Select[DeploymentEvent]:
    """Return the query of history entries of one deployment or one model."""
    return _where_given(
        select(DeploymentEvent).where(DeploymentEvent.workspace == workspace),
        (DeploymentEvent.deployment_id, deployment_id),
        (DeploymentEvent.model_id, model_id),
        (DeploymentEvent.device_id, device_id),
        (DeploymentEvent.source, source),
    )


def deployer_entry(
    deployment: Deployment,
    *,
    message: str,
    action: CommandAction | None = None,
    state: str | None = None,
    actor: str | None = None,
    version_id: uuid.UUID | None = None,
    generation: int | None = None,
    applied: bool = True,
) -> DeploymentEvent:
    """Return a history entry written by the deployer (an action, a resync, a refusal)."""
    return DeploymentEvent(
        workspace=deployment.workspace,
        deployment_id=deployment.id,
        model_id=deployment.model_id,
        device_id=deployment.device_id,
        version_id=version_id or deployment.version_id,
        source="deployer",
        action=action.value if action else None,
        state=state or deployment.state,
        message=message,
        log_tail=[],
        generation=deployment.generation if generation is None else generation,
        sequence=None,
        actor=actor,
        applied=applied,
        occurred_at=utcnow(),
    )


async def record_event(session: AsyncSession, values: dict[str, Any]) -> bool:
    """Add a history entry; return False if this report (deployment, sequence) was recorded."""
    inserted = await session.scalar(
        insert(DeploymentEvent)
        .values(**values)
        .on_conflict_do_nothing(
            index_elements=[DeploymentEvent.deployment_id, DeploymentEvent.sequence],
            index_where=DeploymentEvent.sequence.is_not(None),
        )
        .returning(DeploymentEvent.id)
    )
    return inserted is not None


async def _column_by_id(
    session: AsyncSession,
    key: InstrumentedAttribute[uuid.UUID],
    value: InstrumentedAttribute[T],
    ids: Iterable[uuid.UUID],
) -> dict[uuid.UUID, T]:
    """Return `value` of each row whose `key` is one of `ids`, in one query."""
    wanted = set(ids)
    if not wanted:
        return {}
    rows = await session.execute(select(key, value).where(key.in_(wanted)))
    return dict(rows.all())


async def health_of(
    session: AsyncSession, deployment_ids: Iterable[uuid.UUID]
) -> dict[uuid.UUID, DeploymentHealth]:
    """Return the stored health of each deployment id that has any, in one query."""
    wanted = set(deployment_ids)
    if not wanted:
        return {}
    rows = await session.scalars(
        select(DeploymentHealth).where(DeploymentHealth.deployment_id.in_(wanted))
    )
    return {row.deployment_id: row for row in rows}


async def version_numbers(
    session: AsyncSession, version_ids: Iterable[uuid.UUID]
) -> dict[uuid.UUID, int]:
    """Return the number of each version id."""
    return await _column_by_id(session, ModelVersion.id, ModelVersion.number, version_ids)


async def device_names(
    session: AsyncSession, device_ids: Iterable[uuid.UUID]
) -> dict[uuid.UUID, str]:
    """Return the name of each device id."""
    return await _column_by_id(session, Device.id, Device.name, device_ids)


async def model_names(
    session: AsyncSession, model_ids: Iterable[uuid.UUID]
) -> dict[uuid.UUID, str]:
    """Return the projected name of each model id."""
    return await _column_by_id(session, RegistryModel.id, RegistryModel.name, model_ids)
