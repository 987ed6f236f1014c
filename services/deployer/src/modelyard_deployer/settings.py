"""Deployer settings: `MODELYARD_DEPLOYER_X` overrides `MODELYARD_X`."""

from __future__ import annotations

import ipaddress
import re
from datetime import timedelta
from pathlib import Path
from typing import Annotated, ClassVar, Literal
from urllib.parse import unquote, urlsplit

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import NoDecode

from modelyard_common.settings import (
    DEV_INGRESS_SEAL_KEY,
    INGRESS_SEAL_KEY_ERROR,
    ServiceSettings,
    split_commas,
)

SCHEMA = "deployer"
# The platform's own ports (gateway, registry, deployer, agent local API; PostgreSQL; RabbitMQ's
# AMQP, management, Prometheus, clustering and epmd): never a device's ingress.
DEFAULT_PLATFORM_PORTS = frozenset({8000, 8001, 8002, 8003, 5432, 5672, 15672, 15692, 25672, 4369})
_ALLOWED_HOST = re.compile(r"^(\*\.)?[A-Za-z0-9]([A-Za-z0-9-]{0,62})(\.[A-Za-z0-9-]{1,63})*\.?$")
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
    s3_parts_in_flight: int = Field(
        default=4,
        ge=1,
        le=64,
        description="Parts of one upload sent to the bucket at once; an upload holds at most "
        "this many parts (plus the one filling) in memory.",
    )
    max_upload_bytes: int = Field(default=3 * GiB, ge=1024)
    max_uncompressed_bytes: int = Field(default=16 * GiB, ge=1024)
    max_archive_members: int = Field(default=20_000, ge=1)
    max_compression_ratio: float = Field(default=200.0, gt=1)
    max_manifest_bytes: int = Field(default=256 * 1024, ge=1024)
    heartbeat_interval_s: float = Field(
        default=30.0,
        gt=0,
        le=3600,
        description="Seconds between a device's heartbeats, for a device whose heartbeats do "
        "not say their own (older agents); an agent's heartbeats carry its "
        "`MODELYARD_AGENT_HEARTBEAT_INTERVAL_S`, and that device's offline rule counts it.",
    )
    heartbeat_interval_max_s: float = Field(
        default=600.0,
        gt=0,
        le=3600,
        description="The longest heartbeat interval a device may declare: a longer one counts "
        "as this much (a device saying it beats once a day would read online for two days "
        "after it died).",
    )
    heartbeat_grace_s: float = Field(
        default=5.0,
        ge=0,
        le=600,
        description="Added to two heartbeat intervals before a silent device reads `offline`. "
        "An agent samples its deployments' health for up to min(5 s, interval / 2) before "
        "each heartbeat (counted from the start of one to the start of the next), so one "
        "heartbeat may arrive that much later than the interval says, plus the broker's and "
        "consumer's delay.",
    )
    device_offline_after_s: float | None = Field(
        default=None,
        gt=0,
        description="Silence after which any device reads `offline`; unset: two of the "
        "device's heartbeat intervals plus the grace (65 s at the default 30 s), so it is shown "
        "offline once it has missed two heartbeats.",
    )
    rollout_interval_s: float = Field(
        default=2.0, gt=0, description="How often the rollout engine moves running rollouts."
    )
    registry_timeout_s: float = Field(default=5.0, gt=0)
    logs_timeout_s: float = Field(
        default=10.0,
        gt=0,
        description="How long a device has to start answering a logs request (then 504), and "
        "between the chunks of a tail.",
    )
    logs_max_bytes: int = Field(
        default=4 * MiB, ge=1024, description="Most bytes of lines one tail answer carries."
    )
    logs_follow_max_s: float = Field(
        default=600.0, gt=0, description="Longest a followed log stream runs before it ends."
    )
    logs_follow_max_bytes: int = Field(
        default=32 * MiB, ge=1024, description="Most bytes of lines one followed stream carries."
    )
    logs_keepalive_s: float = Field(
        default=5.0,
        gt=0,
        description="How often a device says a quiet followed stream is still alive; three "
        "missed in a row end the stream.",
    )
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
    # The ingress policy: where a device may say it is reached (devices/ingress.py).
    device_ingress_allow: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description="Comma-separated networks (CIDR or IP) and host names (`*.edge.example` for "
        "a domain's names) a device may advertise; empty: any address the policy does not "
        "refuse (loopback, link-local, unspecified, multicast, reserved, platform ports).",
    )
    device_ingress_allow_loopback: bool | None = Field(
        default=None,
        description="Whether a device may advertise a loopback address; unset: in dev only "
        "(every process on one machine), never in prod.",
    )
    device_ingress_refused_ports: Annotated[list[int] | None, NoDecode] = Field(
        default=None,
        description="Ports no device may advertise, on any address; unset: the platform's own "
        "(see `platform_ports`).",
    )
    device_ingress_resolve_timeout_s: float = Field(
        default=2.0,
        gt=0,
        description="How long a device's advertised host name may take to "
        "resolve before it is judged as unresolved.",
    )
    max_capabilities_bytes: int = Field(
        default=16 * 1024,
        ge=1024,
        description="Largest `capabilities` a heartbeat may carry (its JSON); a larger or "
        "malformed one drops the whole heartbeat.",
    )
    policy_clock_skew_s: float = Field(
        default=1.0,
        ge=0,
        description="Margin for the clocks of the registry and the deployer: a deployment "
        "judged up to this long before an approval change is judged again by it.",
    )

    @field_validator("device_ingress_allow", mode="before")
    @classmethod
    def _split_allow(cls, value: object) -> object:
        return split_commas(value)

    @field_validator("device_ingress_allow")
    @classmethod
    def _check_allow(cls, value: list[str]) -> list[str]:
        for entry in value:
            try:
                ipaddress.ip_network(entry, strict=False)
            except ValueError:
                if not _ALLOWED_HOST.match(entry):
                    raise ValueError(
                        f"{entry!r} is neither a network (CIDR or IP) nor a host name "
                        "(`name.lan`, `*.edge.example`)"
                    ) from None
        return value

    @field_validator("device_ingress_refused_ports", mode="before")
    @classmethod
    def _split_ports(cls, value: object) -> object:
        if isinstance(value, str):
            return [int(item) for item in value.split(",") if item.strip()]
        return value

    def production_errors(self) -> list[str]:
        """Return what keeps the deployer from starting in prod (also the ingress seal key)."""
        errors = super().production_errors()
        if self.ingress_seal_key == DEV_INGRESS_SEAL_KEY:
            errors.append(INGRESS_SEAL_KEY_ERROR)
        return errors

    @property
    def loopback_ingress_allowed(self) -> bool:
        """Return whether devices may advertise loopback addresses (dev only, by default)."""
        if self.device_ingress_allow_loopback is not None:
            return self.device_ingress_allow_loopback
        return self.env == "dev"

    @property
    def platform_ports(self) -> frozenset[int]:
        """Return the ports no device may advertise: the platform's services and broker."""
        if self.device_ingress_refused_ports is not None:
            return frozenset(self.device_ingress_refused_ports)
        ports = set(DEFAULT_PLATFORM_PORTS)
        for url in (
            self.deployer_url,
            self.registry_url,
            self.public_url,
            self.amqp_url,
            self.database_url,
            self.broker_management_url,
            self.device_broker_url,
        ):
            port = _port_of(url)
            if port is not None:
                ports.add(port)
        if self.metrics_port is not None:
            ports.add(self.metrics_port)
        return frozenset(ports)

    def declared_interval(self, said: float | None) -> float | None:
        """Return the heartbeat interval a device declared, within the bound (None: unsaid)."""
        return None if said is None else min(said, self.heartbeat_interval_max_s)

    def offline_after(self, declared_interval_s: float | None = None) -> timedelta:
        """Return the silence after which a device reads `offline`: two of its declared
        heartbeat intervals (`declared_interval`; None: `heartbeat_interval_s`) plus the grace,
        or `device_offline_after_s` when set."""
        if self.device_offline_after_s is not None:
            return timedelta(seconds=self.device_offline_after_s)
        interval = self.heartbeat_interval_s if declared_interval_s is None else declared_interval_s
        return timedelta(seconds=2 * interval + self.heartbeat_grace_s)

    @property
    def broker_vhost(self) -> str:
        """Return the RabbitMQ vhost of `amqp_url` (`/` when the URL names none)."""
        path = urlsplit(self.amqp_url).path
        return unquote(path[1:]) if len(path) > 1 else "/"

    @property
    def artifact_base_url(self) -> str:
        """Return the base URL put into device commands' `artifact_url`."""
        return (self.public_url or self.deployer_url).rstrip("/")


def _port_of(url: str | None) -> int | None:
    """Return the port a URL names (None when it names none or is unreadable).

    Only explicit ports count: a public URL on 443 says nothing about what listens on a
    device's own machine, and refusing 80/443 would refuse reverse-proxied ingresses.
    """
    if not url:
        return None
    try:
        return urlsplit(url).port
    except ValueError:
        return None
