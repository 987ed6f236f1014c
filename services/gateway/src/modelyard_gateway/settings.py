"""Gateway settings: `MODELYARD_GATEWAY_X` overrides `MODELYARD_X`."""

from __future__ import annotations

from typing import ClassVar

from pydantic import Field

from modelyard_common.settings import ServiceSettings

SCHEMA = "gateway"


class GatewaySettings(ServiceSettings):
    """What the gateway reads from the environment, each with a working local default."""

    service_name: ClassVar[str] = "gateway"

    # Fernet key (urlsafe base64, 32 bytes) for cloud tokens at rest. The default is for local
    # development only; production sets MODELYARD_GATEWAY_ENCRYPTION_KEY.
    encryption_key: str = "bW9kZWx5YXJkLWRldi1vbmx5LWtleS0zMi1ieXRlcyE="
    # Fernet key shared with the deployer only: device ingress credentials arrive sealed with it
    # in endpoint events (MODELYARD_INGRESS_SEAL_KEY, read by both services).
    ingress_seal_key: str = "bW9kZWx5YXJkLWRldi1pbmdyZXNzLXNlYWwta2V5MzI="
    cooldown_failures: int = Field(
        default=3, ge=1, description="Failures (one per outage) within the window that cool."
    )
    failure_window_s: float = Field(default=10.0, gt=0, description="Window failures count in.")
    cooldown_s: float = Field(default=1.0, gt=0, description="First cooldown; doubles per repeat.")
    cooldown_max_s: float = Field(default=30.0, gt=0, description="Cap of a growing cooldown.")
    cooldown_jitter: float = Field(default=0.2, ge=0, lt=1, description="Share a cooldown shrinks.")
    max_retry_after_s: float = Field(default=300.0, gt=0)
    # Deadlines of one upstream attempt (an instance's own timeouts may only shorten them).
    connect_timeout_s: float = Field(default=5.0, gt=0, description="TCP/TLS connect.")
    first_byte_timeout_s: float = Field(
        default=15.0, gt=0, description="A stream's first bytes (its first token), from sending."
    )
    answer_timeout_s: float = Field(
        default=120.0, gt=0, description="A non-streaming answer's headers, from sending."
    )
    stream_idle_timeout_s: float = Field(
        default=60.0, gt=0, description="Longest gap between two chunks of an answer."
    )
    request_deadline_s: float = Field(
        default=300.0, gt=0, description="Whole request, all attempts and the stream included."
    )
    max_request_deadline_s: float = Field(
        default=900.0, gt=0, description="Cap on a client's `X-Modelyard-Timeout` header."
    )
    health_interval_s: float = Field(default=10.0, gt=0)
    health_timeout_s: float = Field(default=5.0, gt=0)
    health_path: str = "/v1/models"
    health_failures: int = Field(default=2, ge=1, description="Failed checks to mark down.")
    config_refresh_s: float = Field(default=30.0, gt=0, description="Full reload fallback.")
    state_refresh_s: float = Field(default=5.0, gt=0, description="Shared state reload fallback.")
    max_body_bytes: int = Field(default=32 * 1024 * 1024, ge=1024)
    consume_events: bool = True
