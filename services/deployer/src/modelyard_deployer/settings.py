"""Deployer settings: `MODELYARD_DEPLOYER_X` overrides `MODELYARD_X`."""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar, Literal
from urllib.parse import unquote, urlsplit

from pydantic import Field, SecretStr

from modelyard_common.settings import (
    DEV_INGRESS_SEAL_KEY,
    INGRESS_SEAL_KEY_ERROR,
    ServiceSettings,
)

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
    broker_management_url: str = Field(
        default="http://guest:guest@127.0.0.1:15672",
        description="RabbitMQ management API (with an administrator login): the deployer "
        "creates one broker login per device there, with permissions to its own queue only.",
    )
    broker_management_timeout_s: float = Field(default=10.0, gt=0)
    # Fernet key shared with the gateway only: device ingress credentials travel sealed in
    # endpoint events. Production sets MODELYARD_INGRESS_SEAL_KEY (read by both services).
    ingress_seal_key: str = DEV_INGRESS_SEAL_KEY
    device_broker_url: str | None = Field(
        default=None,
        description="The broker address handed to devices at registration (no login in it).",
    )
    default_ingress_port: int = Field(default=8004, ge=1, le=65535)
    provisioning_max_ttl_h: float = Field(
        default=24 * 30, gt=0, le=24 * 30, description="May lower the 30-day ceiling, not raise it."
    )

    def production_errors(self) -> list[str]:
        """Return what keeps the deployer from starting in prod (also the ingress seal key)."""
        errors = super().production_errors()
        if self.ingress_seal_key == DEV_INGRESS_SEAL_KEY:
            errors.append(INGRESS_SEAL_KEY_ERROR)
        return errors

    @property
    def broker_vhost(self) -> str:
        """Return the RabbitMQ vhost of `amqp_url` (`/` when the URL names none)."""
        path = urlsplit(self.amqp_url).path
        return unquote(path[1:]) if len(path) > 1 else "/"

    @property
    def artifact_base_url(self) -> str:
        """Return the base URL put into device commands' `artifact_url`."""
        return (self.public_url or self.deployer_url).rstrip("/")
