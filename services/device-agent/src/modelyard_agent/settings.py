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


class AgentSettings(ProcessSettings):
    """What one device agent reads from its environment.

    Docker is reached as the Docker SDK does it (`DOCKER_HOST`, else the local socket).
    `amqp_url` names the broker; without a login in it (the normal case) the agent logs in as
    its device (`device-<id>`, a password derived from its token).
    """

    service_name: ClassVar[str] = "agent"

    model_config = SettingsConfigDict(env_prefix="MODELYARD_", extra="ignore")

    device_id: UUID = UUID("00000000-0000-0000-0000-000000000001")
    token: str = "dev-device-token"
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
    download_attempts: int = Field(default=5, ge=1)
    download_timeout_s: float = Field(default=60.0, gt=0)
    disk_reserve_mb: int = Field(default=256, ge=0)
    max_extracted_mb: int = Field(default=4096, ge=1)
    max_compression_ratio: float = Field(default=200.0, gt=1)
    build_timeout_s: float = Field(default=900.0, gt=0)
    log_tail_lines: int = Field(default=50, ge=1)
    proxy_timeout_s: float = Field(default=300.0, gt=0)
    outbox_retry_s: float = Field(default=2.0, gt=0)
    docker_workers: int = Field(default=4, ge=1)
