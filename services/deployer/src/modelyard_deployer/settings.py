"""Deployer settings: `MODELYARD_DEPLOYER_X` overrides `MODELYARD_X`."""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar

from pydantic import Field

from modelyard_common.settings import ServiceSettings

SCHEMA = "deployer"
GiB = 1024**3


class DeployerSettings(ServiceSettings):
    """What the deployer reads from the environment, each with a working local default."""

    service_name: ClassVar[str] = "deployer"

    public_url: str | None = Field(
        default=None,
        description="Base URL devices use to reach the deployer; defaults to `deployer_url`.",
    )
    artifact_dir: Path = Path(".data/deployer/artifacts")
    max_upload_bytes: int = Field(default=3 * GiB, ge=1024)
    max_uncompressed_bytes: int = Field(default=16 * GiB, ge=1024)
    max_archive_members: int = Field(default=20_000, ge=1)
    max_compression_ratio: float = Field(default=200.0, gt=1)
    max_manifest_bytes: int = Field(default=256 * 1024, ge=1024)
    device_offline_after_s: float = Field(default=90.0, gt=0)
    registry_timeout_s: float = Field(default=5.0, gt=0)
    queue_prefix: str = Field(
        default="deployer", description="Prefix of the deployer's own event queues."
    )
    consume_events: bool = True

    @property
    def artifact_base_url(self) -> str:
        """Return the base URL put into device commands' `artifact_url`."""
        return (self.public_url or self.deployer_url).rstrip("/")
