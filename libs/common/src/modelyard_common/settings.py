"""Settings from the environment: `MODELYARD_<SERVICE>_X` overrides `MODELYARD_X`."""

from __future__ import annotations

from typing import Annotated, ClassVar

from pydantic import Field, field_validator
from pydantic_settings import (
    BaseSettings,
    EnvSettingsSource,
    NoDecode,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
)

DEFAULT_DATABASE_URL = "postgresql+asyncpg://postgres@127.0.0.1:5432/modelyard"
DEFAULT_AMQP_URL = "amqp://guest:guest@127.0.0.1:5672/"


class ServiceSettings(BaseSettings):
    """What every service reads; a subclass names its service and adds its own fields."""

    service_name: ClassVar[str] = "modelyard"

    model_config = SettingsConfigDict(env_prefix="MODELYARD_", extra="ignore")

    database_url: str = DEFAULT_DATABASE_URL
    amqp_url: str = DEFAULT_AMQP_URL
    jwt_secret: str = Field(default="dev-only-insecure-secret-change-me", min_length=32)
    jwt_audience: str | None = None
    cors_origins: Annotated[list[str], NoDecode] = Field(default_factory=list)
    log_level: str = "INFO"
    log_json: bool = True
    registry_url: str = "http://127.0.0.1:8001"
    deployer_url: str = "http://127.0.0.1:8002"
    max_request_bytes: int = Field(
        default=1024 * 1024, ge=1024, description="Largest JSON request body read (413 above)."
    )
    db_pool_size: int = Field(default=10, ge=1)
    outbox_poll_interval_s: float = Field(default=0.5, gt=0)
    consumer_prefetch: int = Field(default=32, ge=1)
    consumer_delivery_limit: int = Field(default=5, ge=1)
    housekeeping_interval_s: float = Field(default=3600, gt=0)
    idempotency_retention_h: float = Field(default=24, gt=0)
    processed_events_retention_h: float = Field(default=24 * 7, gt=0)

    @field_validator("cors_origins", mode="before")
    @classmethod
    def _split_origins(cls, value: object) -> object:
        if isinstance(value, str):
            return [origin.strip() for origin in value.split(",") if origin.strip()]
        return value

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
