"""The audit trail API contract."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field


class FieldChange(BaseModel):
    old: Any = None
    new: Any = None


class HistoryEntryRead(BaseModel):
    """One change: who made it, when, and each field's old and new value."""

    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    resource_type: str
    resource_id: uuid.UUID
    action: str = Field(description="created, updated, archived, unarchived, deleted, linked, ...")
    actor: str
    at: datetime
    changes: dict[str, FieldChange]
