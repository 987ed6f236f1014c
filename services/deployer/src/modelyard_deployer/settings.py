"""Deployer settings: `MODELYARD_DEPLOYER_X` overrides `MODELYARD_X`."""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar, Literal

from pydantic import Field, SecretStr

from modelyard_common.settings import ServiceSettings

SCHEMA = "deployer"
GiB = 1024**3
MiB = 1024**2


class DeployerSettings(ServiceSettings):
    """What the deployer reads from the environment, each with a working local default."""

    service_name: ClassVar[str] = "deployer"

    public_url: str | None = Field(
        default=None,
        description="Base URL devices use to reach the deployer; defaults to `deployer_url`.",
    )
    artifact_backend: Literal["local", "s3"] = Field(
        default="local",
        description="Where version zips live: `local` (a directory, shared by every replica "
        "when they mount one volume) or `s3` (a bucket of any S3-compatible service).",
    )
    artifact_dir: Path = Field(
        default=Path(".data/deployer/artifacts"),
        description="The local store's directory; with `s3`, only the upload spool lives here.",
    )
    artifact_staging_max_age_h: float = Field(
        default=6.0,
        gt=0,
        description="Staged uploads untouched this long are leftovers of a crash and are swept.",
    )
    s3_bucket: str = "modelyard-artifacts"
    s3_prefix: str = Field(default="", description="Prepended to every object name.")
    s3_endpoint_url: str | None = Field(
        default=None, description="An S3-compatible endpoint; AWS S3 when unset."
    )
    s3_region: str | None = None
    s3_access_key_id: str | None = Field(
        default=None, description="Unset: the usual AWS chain (environment, web identity, ...)."
    )
    s3_secret_access_key: SecretStr | None = None
    s3_part_bytes: int = Field(default=8 * MiB, ge=5 * MiB, description="Multipart part size.")
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
