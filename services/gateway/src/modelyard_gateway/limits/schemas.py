"""The API contract of limits: a key's limits and budgets, and its workspace's ceiling."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, Field

from modelyard_common.schema_examples import examples_config

_MAX = 10**15


class LimitValues(BaseModel):
    """Requests and tokens per minute, token budgets per UTC day and month; null: no limit.

    Minutes are fixed windows aligned to the clock; a day and a month are UTC. A request over
    any of them is answered 429 with `Retry-After` (the seconds until its window ends).
    """

    model_config = examples_config(
        {
            "requests_per_minute": 600,
            "tokens_per_minute": 200000,
            "tokens_per_day": 5000000,
            "tokens_per_month": None,
        },
        extra="forbid",
    )

    requests_per_minute: int | None = Field(
        default=None, ge=1, le=_MAX, description="Requests per clock minute."
    )
    tokens_per_minute: int | None = Field(
        default=None, ge=1, le=_MAX, description="Tokens (as backends report them) per minute."
    )
    tokens_per_day: int | None = Field(
        default=None, ge=1, le=_MAX, description="Token budget per UTC day."
    )
    tokens_per_month: int | None = Field(
        default=None, ge=1, le=_MAX, description="Token budget per UTC calendar month."
    )


class WorkspaceLimitsUpdate(LimitValues):
    """The fields of the ceiling to change (null removes that limit)."""


class WorkspaceLimitsRead(LimitValues):
    """The ceiling every key of the workspace shares, on top of each key's own limits."""

    model_config = examples_config(
        {
            "workspace": "default",
            "requests_per_minute": 6000,
            "tokens_per_minute": None,
            "tokens_per_day": None,
            "tokens_per_month": 100000000,
            "updated_by": "alice",
            "updated_at": "2026-01-01T00:00:00Z",
            "etag": '"2"',
        }
    )

    workspace: str
    updated_by: str | None = Field(description="Who last changed it (null: never set).")
    updated_at: datetime | None
    etag: str
