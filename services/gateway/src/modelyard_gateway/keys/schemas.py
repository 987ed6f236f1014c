"""The API contract of client API keys."""

from __future__ import annotations

import uuid
from datetime import datetime

from pydantic import BaseModel, Field

from modelyard_common.schema_examples import examples_config
from modelyard_gateway.fields import Name


class KeyCreate(BaseModel):
    """A new client API key, for all groups of the workspace or only some."""

    model_config = examples_config({"name": "support-chatbot", "groups": ["chat"]}, extra="forbid")

    name: str = Field(min_length=1, max_length=200)
    groups: list[Name] | None = Field(
        default=None, max_length=200, description="Group names the key may use; null for all."
    )


class KeyRead(BaseModel):
    """A client API key as listed (the key itself is never shown again)."""

    id: uuid.UUID
    name: str
    groups: list[str] | None
    key_hint: str = Field(description="The key's first characters, to recognise it.")
    created_by: str
    created_at: datetime
    revoked_at: datetime | None


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
        }
    )

    key: str | None = Field(
        description="The key: shown only here (null when a create is replayed by Idempotency-Key)."
    )
