"""The API contract of client API keys."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated

from pydantic import AwareDatetime, BaseModel, Field

from modelyard_common.schema_examples import examples_config
from modelyard_gateway.fields import Name
from modelyard_gateway.limits.schemas import LimitValues

# A time already past is taken as given: the key stops working at once (a way to cut it off
# that keeps its record and its limits), the same on create and on change.
Expiry = Annotated[
    AwareDatetime | None,
    Field(description="When the key stops working (RFC 3339 with a zone); null: never."),
]
KeyLimits = Annotated[
    LimitValues,
    Field(description="The key's limits and budgets; the workspace's ceiling applies as well."),
]


class KeyCreate(BaseModel):
    """A new client API key, for all groups of the workspace or only some."""

    model_config = examples_config(
        {
            "name": "support-chatbot",
            "groups": ["chat"],
            "limits": {"requests_per_minute": 60, "tokens_per_day": 1000000},
            "expires_at": "2027-01-01T00:00:00Z",
        },
        extra="forbid",
    )

    name: str = Field(min_length=1, max_length=200)
    groups: list[Name] | None = Field(
        default=None, max_length=200, description="Group names the key may use; null for all."
    )
    limits: KeyLimits = Field(default_factory=LimitValues)
    expires_at: Expiry = None


class KeyUpdate(BaseModel):
    """The fields of a key to change; `limits` replaces all four (null in one: no limit)."""

    model_config = examples_config(
        {"limits": {"requests_per_minute": 120, "tokens_per_month": 50000000}}, extra="forbid"
    )

    name: str = Field(default=None, min_length=1, max_length=200)  # type: ignore[assignment]
    limits: KeyLimits = Field(default=None)  # type: ignore[assignment]
    expires_at: Expiry = None


class KeyRead(BaseModel):
    """A client API key as listed (the key itself is never shown again)."""

    id: uuid.UUID
    name: str
    groups: list[str] | None
    key_hint: str = Field(description="The key's first characters, to recognise it.")
    created_by: str
    created_at: datetime
    revoked_at: datetime | None
    expires_at: datetime | None
    limits: LimitValues
    etag: str


class KeyCreated(KeyRead):
    """A client API key just created: `key` appears only in this answer."""

    model_config = examples_config(
        {
            "id": "0f8fad5b-d9cb-469f-a165-70867728950e",
            "name": "support-chatbot",
            "groups": ["chat"],
            "key": "sk-my-...",
            "key_hint": "sk-my-AbCd",
            "created_by": "alice",
            "created_at": "2026-01-01T00:00:00Z",
            "revoked_at": None,
            "expires_at": "2027-01-01T00:00:00Z",
            "limits": {
                "requests_per_minute": 60,
                "tokens_per_minute": None,
                "tokens_per_day": 1000000,
                "tokens_per_month": None,
            },
            "etag": '"1"',
        }
    )

    key: str | None = Field(
        description="The key: shown only here (null when a create is replayed by Idempotency-Key)."
    )
