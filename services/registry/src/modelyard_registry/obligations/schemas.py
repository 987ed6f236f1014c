"""The AI Act obligations API contract."""

from __future__ import annotations

import uuid
from datetime import datetime
from enum import StrEnum

from pydantic import BaseModel, Field

from modelyard_common.schema_examples import examples_config
from modelyard_registry.schemas_common import LongText, ShortText


class ObligationStatus(StrEnum):
    open = "open"
    in_progress = "in_progress"
    done = "done"
    not_applicable = "not_applicable"


CLOSED = {ObligationStatus.done, ObligationStatus.not_applicable}


class ObligationRead(BaseModel):
    """One obligation of a system, as derived from its risk level and role, with its status."""

    code: str = Field(examples=["fria"])
    article: str = Field(
        description="Where Regulation (EU) 2024/1689 sets it.", examples=["Art. 27"]
    )
    title: str
    required: bool = Field(description="Must be done before a high-risk system is in_use.")
    status: ObligationStatus
    owner: str
    evidence_id: uuid.UUID | None
    note: str
    updated_at: datetime | None
    updated_by: str | None
    etag: str


class ObligationUpdate(BaseModel):
    """Fields to change; omitted fields keep their value."""

    model_config = examples_config(
        {"status": "done", "owner": "dpo@example.org", "note": "Signed off."}, extra="forbid"
    )

    status: ObligationStatus | None = None
    owner: ShortText | None = None
    evidence_id: uuid.UUID | None = Field(
        default=None, description="An evidence item of this workspace that proves it."
    )
    note: LongText | None = None
