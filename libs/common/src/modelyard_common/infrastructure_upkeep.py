"""The upkeep of a service's infrastructure tables: the outbox relayed, the bookkeeping purged.

Every service keeps the three tables of `infrastructure_models` and looks after them the same
way: its relay publishes the outbox, and the housekeeping round deletes idempotency records and
processed event ids once they are older than the settings' retentions:

    relay = relay_and_purge(runtime, infrastructure)  # then relay.start() once the broker is up
"""

from __future__ import annotations

from datetime import timedelta

from modelyard_common.infrastructure import InfrastructureModels
from modelyard_common.outbox import OutboxRelay
from modelyard_common.web import ServiceRuntime

__all__ = ["relay_and_purge"]


def relay_and_purge(runtime: ServiceRuntime, tables: InfrastructureModels) -> OutboxRelay:
    """Return the (unstarted) relay of the service's outbox; its bookkeeping gets purged.

    Idempotency records and processed event ids go once older than the settings'
    `idempotency_retention_h` and `processed_events_retention_h`.
    """
    settings = runtime.settings
    runtime.retain(
        tables.IdempotencyRecord.created_at, timedelta(hours=settings.idempotency_retention_h)
    )
    runtime.retain(
        tables.ProcessedEvent.processed_at, timedelta(hours=settings.processed_events_retention_h)
    )
    return OutboxRelay(
        runtime.sessionmaker,
        tables.OutboxEvent,
        runtime.broker,
        database_url=settings.database_url,
        poll_interval_s=settings.outbox_poll_interval_s,
    )
