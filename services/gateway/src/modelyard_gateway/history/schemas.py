"""The API contract of the audit trail."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from pydantic import BaseModel, Field

from modelyard_common.schema_examples import examples_config


class FieldChange(BaseModel):
    """One field's value before and after a change (null: absent)."""

    old: Any = None
    new: Any = None


class HistoryEntryRead(BaseModel):
    """One change: who made it, when, and each field's old and new value."""

    model_config = examples_config(
        {
            "id": "3f2b8c1e-5d4a-4e8b-9c7d-2a1b0c9d8e7f",
            "resource_type": "group",
            "resource_id": "9b2e4c6a-1d3f-4a5b-8c7d-0e1f2a3b4c5d",
            "action": "updated",
            "actor": "alice",
            "at": "2026-12-06T15:00:00Z",
            "changes": {
                "strategy": {
                    "old": {"type": "ordered"},
                    "new": {
                        "type": "weighted",
                        "weights": {"0f8fad5b-d9cb-469f-a165-70867728950e": 90},
                        "default_weight": 10,
                        "sticky": None,
                    },
                }
            },
        },
        from_attributes=True,
    )

    id: uuid.UUID
    resource_type: str
    resource_id: uuid.UUID
    action: str = Field(description="created, updated or deleted")
    actor: str = Field(description="The `sub` of who made the change.")
    at: datetime
    changes: dict[str, FieldChange]
