"""Registry settings (`MODELYARD_REGISTRY_X` overrides `MODELYARD_X`)."""

from __future__ import annotations

from typing import ClassVar

from pydantic import Field

from modelyard_common.settings import ServiceSettings


class RegistrySettings(ServiceSettings):
    service_name: ClassVar[str] = "registry"

    event_source: str = "modelyard/registry"
    evidence_max_bytes: int = 10 * 1024 * 1024
    queue_prefix: str = Field(
        default="registry", description="Prefix of the registry's own event queues."
    )
    consume_events: bool = True
    # Sixteen clients at once find sixteen open connections: an overflow connection is closed
    # when it comes back to a full pool and opened again for the next burst (a new backend,
    # its statements prepared anew), which costs the first second and churns after.
    db_pool_size: int = Field(default=16, ge=1)
    startup_broker_wait_s: float = Field(
        default=3.0,
        ge=0,
        description="How long the start waits for the broker (consumers, relay) before serving.",
    )
