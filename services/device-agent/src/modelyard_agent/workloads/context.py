"""What every reconciliation step works with: the device's settings, store, engine and routes."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from uuid import UUID

import httpx

from modelyard_agent.containers.runtime import DockerRuntime
from modelyard_agent.reports.deployments import DeploymentReporter
from modelyard_agent.routes import RouteTable
from modelyard_agent.settings import AgentSettings
from modelyard_agent.store import DesiredStateStore


@dataclass(frozen=True, slots=True)
class WorkloadContext:
    """The device's parts a reconciliation pass reads and changes."""

    settings: AgentSettings
    store: DesiredStateStore
    docker: DockerRuntime
    routes: RouteTable
    http: httpx.AsyncClient
    reporter: DeploymentReporter
    wrapper_path: Path  # the handler wrapper, mounted read-only into `handlers` containers

    @property
    def versions_dir(self) -> Path:
        """Return where unpacked versions live: `<versions>/<deployment>/<version>`."""
        return self.settings.data_dir / "versions"

    @property
    def downloads_dir(self) -> Path:
        """Return where zips (and partial downloads) live until they are unpacked."""
        return self.settings.data_dir / "downloads"

    def project_dir(self, deployment_id: UUID, version_id: UUID | None = None) -> Path:
        """Return the unpacked files of one version of a deployment (or of all its versions)."""
        directory = self.versions_dir / str(deployment_id)
        return directory if version_id is None else directory / str(version_id)
