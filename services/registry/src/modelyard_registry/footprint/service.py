"""The footprint projection: deployer state events in, "where does it run (and when)" out;
gateway usage events in, "how much did it serve, per day" out."""

from __future__ import annotations

import logging
import uuid
from datetime import UTC, date, datetime, timedelta

from pydantic import ValidationError
from sqlalchemy.ext.asyncio import AsyncSession

from modelyard_common.auth import Principal
from modelyard_common.contracts import UsageRecorded
from modelyard_common.errors import UnprocessableError, field_error
from modelyard_common.events import CloudEvent
from modelyard_common.pagination import PageParams
from modelyard_registry.ai_models.service import models
from modelyard_registry.db import DeploymentFootprint, ServingInterval
from modelyard_registry.footprint import repository
from modelyard_registry.footprint.schemas import (
    DeploymentPlace,
    ModelFootprint,
    ModelUsage,
    ServingSpan,
    UsageCounts,
    UsageDay,
)

log = logging.getLogger("modelyard.registry.footprint")
# States in which a deployment's running version is not serving (being stopped or gone).
NOT_SERVING = {"stopped", "removing", "removed"}
USAGE_DEFAULT_DAYS = 30
USAGE_MAX_DAYS = 366


def _uuid(value: object) -> uuid.UUID | None:
    return uuid.UUID(str(value)) if value else None


async def apply_deployment_event(session: AsyncSession, event: CloudEvent) -> None:
    """Update the footprint from one `deployer.deployment.state_changed` event."""
    data = event.data
    workspace = data.get("workspace")
    deployment_id = _uuid(data.get("deployment_id"))
    if not workspace or deployment_id is None:
        log.warning("state event %s has no workspace or deployment; ignored", event.id)
        return
    at = datetime.fromisoformat(str(data.get("occurred_at") or event.time))
    place = await repository.get_place(session, deployment_id=deployment_id)
    if place is not None and place.since > at:
        return  # an older state than the one we hold: it changes neither now nor the past
    fields = {
        "workspace": str(workspace),
        "model_id": _uuid(data["model_id"]),
        "device_id": _uuid(data["device_id"]),
        "version_id": _uuid(data["version_id"]),
        "running_version_id": _uuid(data.get("running_version_id")),
        "state": str(data["state"]),
        "desired_state": str(data.get("desired_state") or ""),
        "since": at,
    }
    if place is None:
        place = DeploymentFootprint(deployment_id=deployment_id, **fields)
        session.add(place)
    else:
        for key, value in fields.items():
            setattr(place, key, value)
    serving = place.running_version_id if place.state not in NOT_SERVING else None
    span = await repository.open_span(session, deployment_id=deployment_id)
    if span is not None and span.version_id != serving:
        span.ended_at = at
        span = None
    if span is None and serving is not None:
        session.add(
            ServingInterval(
                workspace=place.workspace,
                model_id=place.model_id,
                deployment_id=deployment_id,
                device_id=place.device_id,
                version_id=serving,
                started_at=at,
            )
        )
    await session.flush()


async def model_footprint(
    session: AsyncSession, *, principal: Principal, model_id: uuid.UUID
) -> ModelFootprint:
    """Return where the model runs now: each deployment's device, versions and state."""
    await models.get(session, principal=principal, item_id=model_id)
    rows = await repository.places(session, workspace=principal.workspace, model_id=model_id)
    return ModelFootprint(
        model_id=model_id,
        deployments=[DeploymentPlace.model_validate(r, from_attributes=True) for r in rows],
    )


async def model_timeline(
    session: AsyncSession,
    *,
    principal: Principal,
    model_id: uuid.UUID,
    at: datetime | None,
    params: PageParams,
) -> tuple[list[ServingSpan], str | None]:
    """Return the model's serving spans (those covering `at` when given), oldest first."""
    await models.get(session, principal=principal, item_id=model_id)
    if at is not None and at.tzinfo is None:
        at = at.replace(tzinfo=UTC)  # RFC 3339 without an offset: read as UTC
    rows, cursor = await repository.spans(
        session, workspace=principal.workspace, model_id=model_id, at=at, params=params
    )
    return [ServingSpan.model_validate(r, from_attributes=True) for r in rows], cursor


async def apply_usage_event(session: AsyncSession, event: CloudEvent) -> None:
    """Add one `gateway.usage.recorded` event's deltas to its model's day.

    Only models of the event's workspace are counted: a group bound to an id this workspace does
    not hold (another workspace's model, a deleted or mistyped one) would otherwise add rows that
    no one can read (`/usage` is 404 for such a model) or, worse, count one workspace's traffic
    against another's model. Such events are logged and dropped; the gateway keeps its own copy.
    """
    try:
        usage = UsageRecorded.model_validate(event.data)
    except ValidationError as exc:
        log.warning("usage event %s is malformed; dropped: %s", event.id, exc)
        return
    if not await repository.model_exists(
        session, workspace=usage.workspace, model_id=usage.model_id
    ):
        log.warning(
            "usage event %s is about model %s, which workspace %s does not have; dropped",
            event.id,
            usage.model_id,
            usage.workspace,
        )
        return
    await repository.add_usage(
        session,
        workspace=usage.workspace,
        model_id=usage.model_id,
        day=usage.day,
        counts=usage.deltas.model_dump(),
    )


def usage_range(first: date | None, last: date | None) -> tuple[date, date]:
    """Return the days a usage query covers: by default the last 30 (today UTC included)."""
    last = last or datetime.now(UTC).date()
    first = first or last - timedelta(days=USAGE_DEFAULT_DAYS - 1)
    if first > last:
        raise UnprocessableError(
            "`from` is after `to`.",
            errors=[field_error(["query", "from"], message="after `to`", type="range")],
        )
    if (last - first).days + 1 > USAGE_MAX_DAYS:
        raise UnprocessableError(
            f"A usage query covers at most {USAGE_MAX_DAYS} days.",
            errors=[
                field_error(
                    ["query", "to"],
                    message=f"more than {USAGE_MAX_DAYS} days after `from`",
                    type="range",
                )
            ],
        )
    return first, last


async def model_usage(
    session: AsyncSession,
    *,
    principal: Principal,
    model_id: uuid.UUID,
    first: date | None,
    last: date | None,
) -> ModelUsage:
    """Return the model's gateway usage per day from `first` to `last`, with the totals."""
    first, last = usage_range(first, last)
    await models.get(session, principal=principal, item_id=model_id)
    rows = await repository.usage_days(
        session, workspace=principal.workspace, model_id=model_id, first=first, last=last
    )
    days = [
        UsageDay(day=r.day, **{name: getattr(r, name) for name in repository.USAGE_COUNTERS})
        for r in rows
    ]
    totals = UsageCounts(
        **{name: sum(getattr(d, name) for d in days) for name in repository.USAGE_COUNTERS}
    )
    return ModelUsage(model_id=model_id, from_day=first, to_day=last, days=days, totals=totals)
