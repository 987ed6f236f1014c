"""Deployment state reports: each state change is saved, then spooled for the deployer."""

from __future__ import annotations

import logging
from datetime import UTC, datetime

from modelyard_agent.reports.outbox import ReportOutbox
from modelyard_agent.settings import AgentSettings
from modelyard_agent.store import DeploymentRecord, DesiredStateStore
from modelyard_common.contracts import (
    DEPLOYMENT_REPORTED,
    DeploymentReport,
    DeploymentState,
    VersionSpec,
)
from modelyard_common.events import new_event

log = logging.getLogger("modelyard.agent.reconciler")


class DeploymentReporter:
    """Records each deployment's state changes and spools one report per change."""

    def __init__(
        self, settings: AgentSettings, store: DesiredStateStore, outbox: ReportOutbox
    ) -> None:
        self.settings = settings
        self.store = store
        self.outbox = outbox
        # Set by the app once the data dir is ready (see `reports.epoch`).
        self.agent_epoch: str | None = None

    async def report(
        self,
        record: DeploymentRecord,
        state: DeploymentState,
        *,
        message: str = "",
        log_tail: list[str] | None = None,
        version: VersionSpec | None = None,
    ) -> None:
        """Record a state change and spool its report for the deployer."""
        before = (record.sequence, record.state, record.message)
        record.sequence += 1
        record.state = state
        record.message = message
        try:
            await self.store.save(record)
        except OSError:
            # Not recorded (a full disk, say): the change is reported again on the next try.
            record.sequence, record.state, record.message = before
            raise
        running = state in (DeploymentState.running, DeploymentState.rolled_back)
        host_port = record.host_port if running else None
        report = DeploymentReport(
            deployment_id=record.deployment_id,
            device_id=self.settings.device_id,
            generation=record.command.generation,
            sequence=record.sequence,
            state=state,
            version_id=(version or record.command.version).id,
            message=message,
            log_tail=(log_tail or [])[-self.settings.log_tail_lines :],
            host_port=host_port,
            reported_at=datetime.now(UTC),
            agent_epoch=self.agent_epoch,
        )
        log.info("deployment %s -> %s %s", record.deployment_id, state.value, message)
        await self.outbox.put(
            new_event(
                type=DEPLOYMENT_REPORTED,
                source=agent_source(self.settings),
                subject=str(record.deployment_id),
                data=report.model_dump(mode="json"),
            )
        )


def agent_source(settings: AgentSettings) -> str:
    """Return the CloudEvents `source` of what this device's agent sends."""
    return f"/devices/{settings.device_id}/agent"
