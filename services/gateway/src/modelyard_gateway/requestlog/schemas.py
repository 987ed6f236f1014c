"""The API contract of the request log."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from pydantic import BaseModel, Field

from modelyard_common.schema_examples import examples_config

StatusClass = Literal["1xx", "2xx", "3xx", "4xx", "5xx"]
ExportFormat = Literal["csv", "jsonl"]


@dataclass(frozen=True, slots=True)
class RequestFilters:
    """Which requests a listing or an export returns (None: any)."""

    since: datetime | None = None
    until: datetime | None = None
    key_id: uuid.UUID | None = None
    group: str | None = None
    status: int | None = None
    status_class: StatusClass | None = None
    error_cause: str | None = None
    registry_model_id: uuid.UUID | None = None


class LoggedRequest(BaseModel):
    """One client request to the OpenAI-compatible API, as the request log keeps it."""

    model_config = examples_config(
        {
            "id": "4b1c0a4e-8f4b-4c51-9b7e-2f3a55d0a1c2",
            "at": "2026-12-06T15:04:05.123Z",
            "key_id": "0f8fad5b-d9cb-469f-a165-70867728950e",
            "endpoint": "chat/completions",
            "group": "chat",
            "registry_model_id": None,
            "instances": ["llama-local", "cloud-fallback"],
            "attempts": 2,
            "status": 200,
            "error_cause": None,
            "prompt_tokens": 12,
            "completion_tokens": 48,
            "total_tokens": 60,
            "ttfb_ms": 180,
            "duration_ms": 1450,
            "stream": True,
            "replica": "gateway-7d9f-1-3fa2c1",
            "request_body": None,
            "response_body": None,
        }
    )

    id: uuid.UUID
    at: datetime = Field(description="When the gateway received the request.")
    key_id: uuid.UUID = Field(description="The client API key that sent it.")
    endpoint: str = Field(description="`chat/completions`, `completions` or `embeddings`.")
    group: str | None = Field(
        description="The model group (for a refused request: the `model` the client asked for)."
    )
    registry_model_id: uuid.UUID | None = Field(
        description="The registry model the group follows, if any."
    )
    instances: list[str] = Field(description="The instances tried, in order; the last answered.")
    attempts: int = Field(description="Upstream attempts made (0: refused before any).")
    status: int = Field(description="The HTTP status the client got.")
    error_cause: str | None = Field(
        description="Why it failed: `model_not_found`, `model_not_approved`, an instance's "
        "failure code (`http_5xx`, `connect_failed`, `first_byte_timeout`, ...), `http_4xx` "
        "(the backend refused the request), `stream_interrupted`, `client_closed`, ..."
    )
    prompt_tokens: int | None = Field(description="As the backend reported it.")
    completion_tokens: int | None = Field(description="As the backend reported it.")
    total_tokens: int | None = Field(description="As the backend reported it.")
    ttfb_ms: int | None = Field(description="From receiving the request to the first byte sent.")
    duration_ms: int = Field(description="From receiving the request to its end.")
    stream: bool = Field(description="Whether the answer was streamed (SSE).")
    replica: str = Field(description="The gateway replica that served it.")
    request_body: str | None = Field(
        description="The prompt, only for groups with `log_bodies` (capped at 64 KiB)."
    )
    response_body: str | None = Field(
        description="The answer as sent, only for groups with `log_bodies` (capped at 64 KiB)."
    )
