"""Settings from the environment: `MODELYARD_<SERVICE>_X` overrides `MODELYARD_X`."""

from __future__ import annotations

from typing import Annotated, ClassVar, Literal

from pydantic import Field, field_validator
from pydantic_settings import (
    BaseSettings,
    EnvSettingsSource,
    NoDecode,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
)

from modelyard_common.governance.rules import Gate

DEFAULT_DATABASE_URL = "postgresql+asyncpg://postgres@127.0.0.1:5432/modelyard"
DEFAULT_AMQP_URL = "amqp://guest:guest@127.0.0.1:5672/"
# Signs `modelyard dev-token` tokens; HS256 tokens are accepted only when MODELYARD_ENV=dev.
DEV_JWT_SECRET = "dev-only-insecure-secret-change-me"
# Seals device ingress credentials between the deployer and the gateway; refused in prod.
DEV_INGRESS_SEAL_KEY = "bW9kZWx5YXJkLWRldi1pbmdyZXNzLXNlYWwta2V5MzI="
INGRESS_SEAL_KEY_ERROR = (
    "MODELYARD_INGRESS_SEAL_KEY is not set: the development key is refused in prod "
    "(the same Fernet key on the deployer and the gateway)"
)
ASYMMETRIC_ALGORITHMS = frozenset(
    {"RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA"}
)


def split_commas(value: object) -> object:
    """Return a comma-separated variable's items, stripped, empty ones left out (a list as is)."""
    if isinstance(value, str):
        return [item.strip() for item in value.split(",") if item.strip()]
    return value


class ConfigurationError(Exception):
    """A setting a service cannot start with; the message names the variable."""


class ProcessSettings(BaseSettings):
    """What every Modelyard process reads, a device agent included: no database, no secrets."""

    service_name: ClassVar[str] = "modelyard"

    model_config = SettingsConfigDict(env_prefix="MODELYARD_", extra="ignore")

    # `prod` (the default) accepts only the configured OpenID issuer's tokens and refuses to start
    # without its own settings; `dev` also accepts HS256 tokens signed with jwt_secret.
    env: Literal["dev", "prod"] = "prod"
    amqp_url: str = DEFAULT_AMQP_URL
    metrics_token: str | None = Field(
        default=None, min_length=16, description="If set, /metrics needs `Bearer <token>`."
    )
    metrics_port: int | None = Field(
        default=None, ge=1, le=65535, description="If set, /metrics is served on this port only."
    )
    metrics_host: str = "127.0.0.1"
    cors_origins: Annotated[list[str], NoDecode] = Field(default_factory=list)
    log_level: str = "INFO"
    log_json: bool = True
    deployer_url: str = "http://127.0.0.1:8002"
    max_request_bytes: int = Field(
        default=1024 * 1024, ge=1024, description="Largest JSON request body read (413 above)."
    )
    consumer_prefetch: int = Field(default=32, ge=1)
    consumer_delivery_limit: int = Field(default=5, ge=1)

    @field_validator("cors_origins", mode="before")
    @classmethod
    def _split_origins(cls, value: object) -> object:
        return split_commas(value)

    def env_name(self, field: str) -> str:
        """Return the shared environment variable that sets `field` (e.g. MODELYARD_JWT_SECRET)."""
        return f"MODELYARD_{field.upper()}"

    def production_errors(self) -> list[str]:
        """Return what keeps this process from starting in prod, one line each (empty: fine)."""
        return []

    def ensure_startable(self) -> None:
        """Raise ConfigurationError (naming the variable) if this service must not start."""
        if self.env == "dev":
            return
        errors = self.production_errors()
        if errors:
            raise ConfigurationError(errors[0])

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        own = EnvSettingsSource(
            settings_cls, env_prefix=f"MODELYARD_{cls.service_name.upper().replace('-', '_')}_"
        )
        return (init_settings, own, env_settings)


class ServiceSettings(ProcessSettings):
    """What a platform service reads: its database, the JWT secret, the other services."""

    database_url: str = DEFAULT_DATABASE_URL
    jwt_secret: str = Field(default=DEV_JWT_SECRET, min_length=32)
    jwt_audience: str | None = None
    oidc_issuer: str | None = Field(default=None, description="OpenID issuer URL (exact `iss`).")
    oidc_audience: str | None = Field(default=None, description="The `aud` tokens must carry.")
    oidc_jwks_url: str | None = Field(default=None, description="Skip discovery, use this JWKS.")
    oidc_algorithms: Annotated[list[str], NoDecode] = Field(default=["RS256", "ES256"])
    oidc_sub_claim: str = "sub"
    oidc_workspaces_claim: str = "workspaces"
    oidc_roles_claim: str = "roles"
    oidc_role_prefix: str = Field(default="", description="Stripped from role values first.")
    oidc_leeway_s: float = Field(default=30.0, ge=0, le=300)
    oidc_jwks_cache_s: float = Field(default=300.0, gt=0)
    oidc_jwks_refresh_cooldown_s: float = Field(
        default=30.0, ge=0, description="Least time between JWKS refetches for unknown key ids."
    )
    oidc_http_timeout_s: float = Field(default=5.0, gt=0)
    token_cache_s: float = Field(
        default=60.0,
        ge=0,
        le=3600,
        description="How long a verified bearer token is trusted without checking its signature "
        "again (never past its `exp`); 0 checks every request.",
    )
    registry_url: str = "http://127.0.0.1:8001"
    db_pool_size: int = Field(default=10, ge=1)
    outbox_poll_interval_s: float = Field(default=0.5, gt=0)
    housekeeping_interval_s: float = Field(default=3600, gt=0)
    idempotency_retention_h: float = Field(default=24, gt=0)
    processed_events_retention_h: float = Field(default=24 * 7, gt=0)
    policy_default_gate: Gate = Field(
        default=Gate.enforce,
        description="The policy gate of a workspace that never chose one (same in every service).",
    )

    @field_validator("oidc_algorithms", mode="before")
    @classmethod
    def _split_algorithms(cls, value: object) -> object:
        value = split_commas(value)
        if isinstance(value, list) and not set(value) <= ASYMMETRIC_ALGORITHMS:
            raise ValueError(
                f"only asymmetric algorithms are allowed: {sorted(ASYMMETRIC_ALGORITHMS)}"
            )
        return value

    def production_errors(self) -> list[str]:
        """Return what keeps this service from starting in prod, one line each (empty: fine)."""
        errors = []
        for field in ("oidc_issuer", "oidc_audience"):
            if not getattr(self, field):
                errors.append(
                    f"{self.env_name(field)} is not set: people's tokens come from your OpenID "
                    "issuer in prod (MODELYARD_ENV=prod; set MODELYARD_ENV=dev for local use)"
                )
        return errors
