"""Gateway settings: `MODELYARD_GATEWAY_X` overrides `MODELYARD_X`."""

from __future__ import annotations

import ipaddress
from typing import Annotated, ClassVar

from pydantic import Field, field_validator
from pydantic_settings import NoDecode

from modelyard_common.settings import (
    DEV_INGRESS_SEAL_KEY,
    INGRESS_SEAL_KEY_ERROR,
    ServiceSettings,
    split_commas,
)
from modelyard_gateway.destination import check_path
from modelyard_gateway.egress import DEFAULT_LOCAL_NETWORKS, EgressPolicy

SCHEMA = "gateway"
DEV_ENCRYPTION_KEY = "bW9kZWx5YXJkLWRldi1vbmx5LWtleS0zMi1ieXRlcyE="


class GatewaySettings(ServiceSettings):
    """What the gateway reads from the environment, each with a working local default."""

    service_name: ClassVar[str] = "gateway"

    # Fernet keys (urlsafe base64, 32 bytes), comma-separated, for secrets at rest: the first
    # seals, every one opens (rotation: put the new key first, run `modelyard-gateway reseal`,
    # then drop the old one). The default is for development only and is refused in prod.
    encryption_key: str = DEV_ENCRYPTION_KEY
    # Fernet key shared with the deployer only: device ingress credentials arrive sealed with it
    # in endpoint events (MODELYARD_INGRESS_SEAL_KEY, read by both services).
    ingress_seal_key: str = DEV_INGRESS_SEAL_KEY
    # Where instances, their proxies and health checks may connect: CIDRs or host names
    # (`.example.com` covers subdomains). Empty allow = anywhere not denied. Link-local and cloud
    # metadata addresses are always refused.
    egress_allow: Annotated[list[str], NoDecode] = Field(default_factory=list)
    egress_deny: Annotated[list[str], NoDecode] = Field(default_factory=list)
    # Prod's egress rules (see `egress.py`): no loopback, multicast or reserved addresses for any
    # instance, no private ones for cloud instances, only `egress_local_networks` among the
    # private ones for local instances and proxies. None: on when MODELYARD_ENV=prod.
    egress_strict: bool | None = None
    egress_local_networks: Annotated[list[str], NoDecode] = Field(
        default_factory=lambda: list(DEFAULT_LOCAL_NETWORKS)
    )
    # `POST /v1/instances/{id}/check` calls per instance and window (per replica); more are 429.
    check_burst: int = Field(default=5, ge=1)
    check_window_s: float = Field(default=10.0, gt=0)
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
    config_reload_gap_s: float = Field(
        default=0.2,
        ge=0,
        le=5,
        description="Least time between two rebuilds of the routing catalog: changes arriving "
        "meanwhile (a burst of events or admin writes) are read by one rebuild after the gap.",
    )
    events_share: float = Field(
        default=0.05,
        gt=0,
        le=1,
        description="The most of the event loop the event consumers take while the replica "
        "serves requests (1: no pacing); idle, they drain at full speed.",
    )
    state_refresh_s: float = Field(default=5.0, gt=0, description="Shared state reload fallback.")
    max_body_bytes: int = Field(default=32 * 1024 * 1024, ge=1024)
    limits_sync_s: float = Field(
        default=1.0,
        gt=0,
        le=60,
        description="How often a replica writes the tokens it counted against limits and budgets "
        "and reads what the other replicas counted (what a token limit can be passed by).",
    )
    usage_flush_s: float = Field(
        default=5.0,
        gt=0,
        description="How often a replica writes its usage counts (and their events); a crash "
        "loses at most this much of its counts.",
    )
    request_log_enabled: bool = Field(
        default=True,
        description="Keep one record per client request; false: no record is built or kept "
        "(benchmarks, or a replica whose traffic is logged elsewhere).",
    )
    request_log_retention_days: int = Field(
        default=180,
        ge=1,
        description="Days the request log keeps each request (EU AI Act: at least six months).",
    )
    request_log_flush_s: float = Field(
        default=1.0, gt=0, description="How often a replica writes its buffered request records."
    )
    request_log_batch: int = Field(
        default=5000, ge=1, description="Records per write; a full batch is written at once."
    )
    request_log_buffer: int = Field(
        default=100_000,
        ge=1,
        description="Records a replica keeps while the database is unreachable; beyond, it "
        "drops (and counts) them rather than slow down requests.",
    )
    request_log_body_bytes: int = Field(
        default=64 * 1024,
        ge=0,
        description="Cap on each prompt and answer kept for groups with `log_bodies`.",
    )
    consume_events: bool = True
    # OpenTelemetry (off unless an OTLP/HTTP endpoint is configured, here or by the standard
    # OTEL_EXPORTER_OTLP_ENDPOINT / OTEL_EXPORTER_OTLP_TRACES_ENDPOINT variables).
    otel_endpoint: str | None = Field(
        default=None,
        description="OTLP/HTTP base URL (traces to {url}/v1/traces, metrics to {url}/v1/metrics); "
        "overrides OTEL_EXPORTER_OTLP_ENDPOINT.",
    )
    otel_service_name: str | None = Field(
        default=None,
        description="service.name of spans and metrics; default OTEL_SERVICE_NAME, else "
        "modelyard-gateway.",
    )
    otel_sample_ratio: float = Field(
        default=1.0,
        ge=0,
        le=1,
        description="Share of traces started here that are recorded (an incoming traceparent's "
        "sampled flag is followed).",
    )
    otel_metrics_interval_s: float = Field(
        default=60.0, gt=0, description="How often OpenTelemetry metrics are exported."
    )

    @field_validator("egress_allow", "egress_deny", "egress_local_networks", mode="before")
    @classmethod
    def _split_lists(cls, value: object) -> object:
        return split_commas(value)

    @field_validator("health_path")
    @classmethod
    def _health_path(cls, value: str) -> str:
        return check_path(value)  # a path, joined to each instance's URL (never appended)

    @field_validator("egress_local_networks")
    @classmethod
    def _networks(cls, value: list[str]) -> list[str]:
        for entry in value:
            ipaddress.ip_network(entry, strict=False)  # ValueError names the bad entry
        return value

    @property
    def egress_is_strict(self) -> bool:
        """Return whether prod's egress rules apply (MODELYARD_ENV=prod unless configured)."""
        return self.env == "prod" if self.egress_strict is None else self.egress_strict

    def egress_policy(self) -> EgressPolicy:
        """Return the egress policy these settings describe."""
        return EgressPolicy.parse(
            allow=self.egress_allow,
            deny=self.egress_deny,
            strict=self.egress_is_strict,
            local_networks=self.egress_local_networks,
        )

    def env_name(self, field: str) -> str:
        """Return the variable of a field; the gateway's own ones carry MODELYARD_GATEWAY_."""
        if field in GatewaySettings.model_fields and field not in ServiceSettings.model_fields:
            return f"MODELYARD_GATEWAY_{field.upper()}"
        return super().env_name(field)

    def production_errors(self) -> list[str]:
        """Return what keeps the gateway from starting in prod (also its encryption key)."""
        errors = super().production_errors()
        keys = split_commas(self.encryption_key)
        # The development key may stay as an old key while a rotation re-seals its secrets.
        if not isinstance(keys, list) or not keys or keys[0] == DEV_ENCRYPTION_KEY:
            errors.append(
                f"{self.env_name('encryption_key')} is not set: the development key is refused "
                "in prod (generate one: python -c 'from cryptography.fernet import Fernet; "
                "print(Fernet.generate_key().decode())')"
            )
        if self.ingress_seal_key == DEV_INGRESS_SEAL_KEY:
            errors.append(INGRESS_SEAL_KEY_ERROR)
        return errors
