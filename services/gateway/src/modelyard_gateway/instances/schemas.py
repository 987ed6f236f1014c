"""The API contract of model instances."""

from __future__ import annotations

import uuid
from datetime import datetime
from enum import StrEnum
from typing import Any, Self

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    StrictBool,
    StrictFloat,
    field_validator,
    model_validator,
)

from modelyard_common.schema_examples import examples_config
from modelyard_gateway.fields import Name
from modelyard_gateway.instances.validation import (
    HEADERS_SCHEMA,
    HOST_PATTERN,
    PREFIX_PATTERN,
    SECRET_HEADERS_SCHEMA,
    URL_PATTERN,
    finite,
    valid_headers,
    valid_path,
    valid_proxy_url,
    valid_secret_headers,
    valid_url,
)


class InstanceKind(StrEnum):
    local = "local"
    cloud = "cloud"


class Protocol(StrEnum):
    http = "http"
    https = "https"


class _InstanceFields(BaseModel):
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    @field_validator("base_url", check_fields=False)
    @classmethod
    def _url(cls, value: str | None) -> str | None:
        return valid_url(value)

    @field_validator("proxy_url", check_fields=False)
    @classmethod
    def _proxy(cls, value: str | None) -> str | None:
        return valid_proxy_url(value)

    @field_validator("secret_headers", check_fields=False)
    @classmethod
    def _secret_headers(cls, value: dict[str, SecretStr] | None) -> dict[str, SecretStr] | None:
        return valid_secret_headers(value)

    @field_validator("extra_headers", check_fields=False)
    @classmethod
    def _headers(cls, value: dict[str, str] | None) -> dict[str, str] | None:
        return valid_headers(value)

    @field_validator("default_params", check_fields=False)
    @classmethod
    def _defaults(cls, value: dict[str, Any] | None) -> dict[str, Any] | None:
        # `model` is the instance's upstream_model and `stream` is the client's choice.
        for reserved in ("model", "stream"):
            if value is not None and reserved in value:
                raise ValueError(f"'{reserved}' cannot have a default")
        finite(value)
        return value

    @field_validator("param_caps", mode="before", check_fields=False)
    @classmethod
    def _caps(cls, value: Any) -> Any:
        finite(value)
        return value

    @field_validator("path_prefix", check_fields=False)
    @classmethod
    def _prefix(cls, value: str | None) -> str | None:
        checked = valid_path(value)
        return None if checked is None else checked.rstrip("/")

    @field_validator("health_path", check_fields=False)
    @classmethod
    def _health_path(cls, value: str | None) -> str | None:
        return valid_path(value)


class InstanceCreate(_InstanceFields):
    """A new instance: `local` needs host and port, `cloud` needs base_url."""

    model_config = ConfigDict(
        extra="forbid",
        allow_inf_nan=False,
        json_schema_extra={
            "examples": [
                {
                    "name": "llama-box-1",
                    "kind": "local",
                    "host": "10.0.0.12",
                    "port": 8080,
                    "upstream_model": "llama-3.1-8b-instruct",
                    "max_concurrency": 8,
                    "default_params": {"temperature": 0.2},
                    "param_caps": {"max_tokens": 2048},
                },
                {
                    "name": "openai",
                    "kind": "cloud",
                    "base_url": "https://api.openai.com/v1",
                    "token": "sk-...",
                    "upstream_model": "gpt-4o-mini",
                },
                {
                    "name": "azure-gpt-4o",
                    "kind": "cloud",
                    "base_url": "https://myorg.openai.azure.com/openai/deployments/gpt-4o",
                    "secret_headers": {"api-key": "..."},
                    "default_params": {"api-version": "2024-10-21"},
                    "upstream_model": "gpt-4o",
                },
            ],
            # What `check_kind_fields` enforces, for clients: each kind's own required fields.
            "allOf": [
                {
                    "if": {"properties": {"kind": {"const": "local"}}},
                    "then": {
                        "required": ["host", "port"],
                        "properties": {
                            "host": {"type": "string", "minLength": 1},
                            "port": {"type": "integer"},
                        },
                    },
                },
                {
                    "if": {"properties": {"kind": {"const": "cloud"}}},
                    "then": {
                        "required": ["base_url"],
                        "properties": {"base_url": {"type": "string", "minLength": 1}},
                    },
                },
            ],
        },
    )

    name: Name
    kind: InstanceKind
    host: str | None = Field(default=None, max_length=255, pattern=HOST_PATTERN)
    port: int | None = Field(default=None, ge=1, le=65535)
    protocol: Protocol = Protocol.http
    path_prefix: str = Field(
        default="", max_length=255, pattern=PREFIX_PATTERN, description="Put before `/v1/...`."
    )
    base_url: str | None = Field(
        default=None,
        max_length=2048,
        pattern=URL_PATTERN,
        description="Cloud API URL; a trailing `/v1` is optional.",
    )
    token: SecretStr | None = Field(
        default=None, description="Sent as `Authorization: Bearer`; write-only, encrypted at rest."
    )
    proxy_url: str | None = Field(
        default=None, max_length=2048, pattern=URL_PATTERN, description="HTTP proxy to use."
    )
    proxy_username: str | None = Field(default=None, max_length=255)
    proxy_password: SecretStr | None = Field(default=None, description="Write-only.")
    extra_headers: dict[str, str] = Field(
        default_factory=dict,
        description="Plain headers, shown to readers; no credentials.",
        json_schema_extra=HEADERS_SCHEMA,
    )
    secret_headers: dict[str, SecretStr] = Field(
        default_factory=dict,
        description="Credential headers (`api-key`, `x-api-key`, ...): write-only, encrypted at "
        "rest; reads show only their names.",
        json_schema_extra=SECRET_HEADERS_SCHEMA,
    )
    upstream_model: str = Field(min_length=1, max_length=255, description="Sent as `model`.")
    connect_timeout_s: float = Field(default=5.0, gt=0, le=600)
    read_timeout_s: float = Field(default=120.0, gt=0, le=3600)
    max_concurrency: int | None = Field(default=None, ge=1, le=100_000)
    default_params: dict[str, Any] = Field(
        default_factory=dict, description="Merged under the client's request fields."
    )
    param_caps: dict[str, StrictFloat] = Field(
        default_factory=dict, description="Upper bounds of numeric fields, e.g. max_tokens."
    )
    health_path: str | None = Field(
        default=None,
        max_length=255,
        pattern=PREFIX_PATTERN,
        description="Health check path (default the gateway's, `/v1/models`); empty turns it off. "
        "A path after the instance's URL, part of its destination.",
    )
    enabled: StrictBool = True

    @model_validator(mode="after")
    def _kind_fields(self) -> Self:
        check_kind_fields(kind=self.kind, host=self.host, port=self.port, base_url=self.base_url)
        return self


def check_kind_fields(
    *, kind: InstanceKind | str, host: str | None, port: int | None, base_url: str | None
) -> None:
    """Raise ValueError unless the fields that `kind` needs are there."""
    if kind == InstanceKind.local and (not host or port is None):
        raise ValueError("a local instance needs host and port")
    if kind == InstanceKind.cloud and not base_url:
        raise ValueError("a cloud instance needs base_url")


class InstanceUpdate(_InstanceFields):
    """Fields to change; absent ones stay. `token: ""` removes the token."""

    model_config = examples_config(
        {"enabled": False}, {"read_timeout_s": 30}, extra="forbid", allow_inf_nan=False
    )

    name: Name | None = None
    kind: InstanceKind | None = None
    host: str | None = Field(default=None, max_length=255, pattern=HOST_PATTERN)
    port: int | None = Field(default=None, ge=1, le=65535)
    protocol: Protocol | None = None
    path_prefix: str | None = Field(default=None, max_length=255, pattern=PREFIX_PATTERN)
    base_url: str | None = Field(default=None, max_length=2048, pattern=URL_PATTERN)
    token: SecretStr | None = None
    proxy_url: str | None = Field(default=None, max_length=2048, pattern=URL_PATTERN)
    proxy_username: str | None = Field(default=None, max_length=255)
    proxy_password: SecretStr | None = None
    extra_headers: dict[str, str] | None = Field(default=None, json_schema_extra=HEADERS_SCHEMA)
    secret_headers: dict[str, SecretStr] | None = Field(
        default=None,
        description="Replaces the whole sealed map; `{}` removes them.",
        json_schema_extra=SECRET_HEADERS_SCHEMA,
    )
    upstream_model: str | None = Field(default=None, min_length=1, max_length=255)
    connect_timeout_s: float | None = Field(default=None, gt=0, le=600)
    read_timeout_s: float | None = Field(default=None, gt=0, le=3600)
    max_concurrency: int | None = Field(default=None, ge=1, le=100_000)
    default_params: dict[str, Any] | None = None
    param_caps: dict[str, StrictFloat] | None = None
    health_path: str | None = Field(default=None, max_length=255, pattern=PREFIX_PATTERN)
    enabled: StrictBool | None = None


class InstanceHealthRead(BaseModel):
    """The shared health of an instance as every replica sees it."""

    status: str = Field(description="`up`, `down` (health check) or `cooldown` (failures).")
    reason: str = ""
    cooldown_until: datetime | None = None
    checked_at: datetime | None = None


class InstanceRead(BaseModel):
    """An instance as the API shows it; secrets are never returned."""

    id: uuid.UUID
    name: str
    kind: InstanceKind
    host: str | None
    port: int | None
    protocol: Protocol
    path_prefix: str
    base_url: str | None
    has_token: bool = Field(description="Whether a token is stored (it is never shown).")
    proxy_url: str | None
    proxy_username: str | None
    has_proxy_password: bool
    extra_headers: dict[str, str]
    has_secret_headers: bool = Field(description="Whether secret headers are stored.")
    secret_header_names: list[str] = Field(description="Their names (values are never shown).")
    upstream_model: str
    connect_timeout_s: float
    read_timeout_s: float
    max_concurrency: int | None
    default_params: dict[str, Any]
    param_caps: dict[str, float]
    health_path: str | None
    enabled: bool
    health: InstanceHealthRead
    created_at: datetime
    updated_at: datetime
    etag: str


class InstanceCheck(BaseModel):
    """The result of probing an instance now."""

    model_config = examples_config(
        {
            "ok": True,
            "latency_ms": 3.2,
            "status_code": 200,
            "error": None,
            "url": "http://10.0.0.12:8080/v1/models",
        },
        {
            "ok": False,
            "latency_ms": 0.4,
            "status_code": None,
            "error": "connect_failed",
            "url": "http://10.0.0.12:8080/v1/models",
        },
    )

    ok: bool
    latency_ms: float
    status_code: int | None
    error: str | None = Field(
        description="Why not ok, as a fixed word: `connect_failed`, `connect_timeout`, `timeout`, "
        "`http_status`, `dropped`, `malformed`, `refused`, ... (never the transport's text)."
    )
    url: str = Field(description="The URL probed: the health path joined to the instance's URL.")
