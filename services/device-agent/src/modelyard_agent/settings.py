"""Agent settings: `MODELYARD_AGENT_X`, then `MODELYARD_X`, each with a working local default.

A device holds only what is its own: its id and token, the deployer's URL, the broker's URL and
its data dir (plus tuning). No JWT secret and no database URL exist here, so none can leak.
"""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar
from uuid import UUID

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from modelyard_common.settings import ProcessSettings

DEV_DEVICE_ID = UUID("00000000-0000-0000-0000-000000000001")
DEV_DEVICE_TOKEN = "dev-device-token"


class AgentSettings(ProcessSettings):
    """What one device agent reads from its environment.

    Docker is reached as the Docker SDK does it (`DOCKER_HOST`, else the local socket).
    `amqp_url` names the broker; without a login in it (the normal case) the agent logs in as
    its device (`device-<id>`, a password derived from its token).
    """

    service_name: ClassVar[str] = "agent"

    model_config = SettingsConfigDict(env_prefix="MODELYARD_", extra="ignore")

    device_id: UUID = DEV_DEVICE_ID
    token: str = DEV_DEVICE_TOKEN
    data_dir: Path = Path("/var/lib/modelyard-agent")
    port: int = Field(default=8003, ge=1, le=65535)
    advertise_host: str = "127.0.0.1"
    ingress_host: str | None = Field(
        default=None, description="Where the ingress listens; defaults to `advertise_host`."
    )
    ingress_port: int = Field(default=8004, ge=0, le=65535, description="0 picks a free port.")
    heartbeat_interval_s: float = Field(default=30.0, gt=0)
    reconcile_interval_s: float = Field(default=30.0, gt=0)
    backoff_initial_s: float = Field(default=2.0, gt=0)
    backoff_max_s: float = Field(default=300.0, gt=0)
    health_timeout_s: float = Field(default=120.0, gt=0)
    health_interval_s: float = Field(default=0.25, gt=0)
    drain_timeout_s: float = Field(default=10.0, ge=0)
    stop_timeout_s: int = Field(default=10, ge=0)
    download_attempts: int = Field(
        default=5, ge=1, description="Download attempts in a row that bring no new bytes."
    )
    download_timeout_s: float = Field(default=60.0, gt=0)
    download_retry_s: float = Field(
        default=0.5, gt=0, description="First delay between download attempts (then doubled)."
    )
    download_retry_max_s: float = Field(default=30.0, gt=0)
    disk_margin_mb: int = Field(
        default=256, ge=0, description="Free disk a version must leave after it is unpacked."
    )
    disk_unpack_factor: float = Field(
        default=1.0,
        ge=0,
        description="Unpacked size assumed per byte of zip before the zip's own listing is known.",
    )
    max_extracted_mb: int = Field(default=4096, ge=1)
    max_compression_ratio: float = Field(default=200.0, gt=1)
    build_timeout_s: float = Field(default=900.0, gt=0)
    log_tail_lines: int = Field(default=50, ge=1)
    logs_max_streams: int = Field(
        default=4, ge=1, description="Logs requests answered at once (each reads on a thread)."
    )
    logs_max_bytes: int = Field(
        default=64 * 1024 * 1024,
        ge=1024,
        description="Most bytes of lines one logs answer carries, whatever the deployer asks.",
    )
    logs_follow_max_s: float = Field(
        default=3600.0, gt=0, description="Longest a followed log stream runs, whatever is asked."
    )
    proxy_timeout_s: float = Field(default=300.0, gt=0)
    outbox_retry_s: float = Field(default=2.0, gt=0)
    docker_workers: int = Field(default=4, ge=1)
    container_pids_limit: int = Field(
        default=512, ge=16, description="Most processes and threads one model container may have."
    )
    container_tmp_mb: int = Field(
        default=256, ge=1, description="Size of a model container's /tmp (its memory counts)."
    )

    def production_errors(self) -> list[str]:
        """Return what keeps the agent from starting in prod: it needs its own identity.

        The agent checks no people's tokens (its local API is for the device itself), so it
        needs no OpenID settings; its development device id and token are refused.
        """
        errors = []
        if self.device_id == DEV_DEVICE_ID:
            errors.append("MODELYARD_AGENT_DEVICE_ID is not set (the development id is refused)")
        if self.token == DEV_DEVICE_TOKEN:
            errors.append("MODELYARD_AGENT_TOKEN is not set (the development token is refused)")
        return errors
