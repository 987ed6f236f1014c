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
