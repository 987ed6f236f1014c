"""The evidence API contract."""

from __future__ import annotations

import uuid
from datetime import date, datetime
from enum import StrEnum
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, HttpUrl, StringConstraints

from modelyard_common.schema_examples import examples_config
from modelyard_registry.schemas_common import Name, ShortText


class EvidenceType(StrEnum):
    model_card = "model_card"
    dpia = "dpia"
    fria = "fria"
    bias_report = "bias_report"
    technical_documentation = "technical_documentation"
    conformity_declaration = "conformity_declaration"
    test_report = "test_report"
    instructions_for_use = "instructions_for_use"
    other = "other"


FileName = Annotated[
    str, StringConstraints(min_length=1, max_length=255, pattern=r"^[^/\\\x00-\x1f]+$")
]


class EvidenceCreate(BaseModel):
    """A new evidence item: a link, or a file attached afterwards with PUT .../file."""

    model_config = examples_config(
        {
            "type": "fria",
            "title": "FRIA for checkout-risk, 2026 review",
            "url": "https://dms.example.org/docs/fria-2026.pdf",
            "owner": "dpo@example.org",
            "expires_on": "2027-06-30",
            "system_id": "1b0e6c5e-0c7e-4c16-9d9f-0d0f5f9bb2a1",
        },
        extra="forbid",
    )

    type: EvidenceType
    title: Name
    url: HttpUrl | None = Field(default=None, description="Where the document lives, if linked.")
    owner: ShortText = ""
    expires_on: date | None = Field(default=None, description="When it must be renewed.")
    system_id: uuid.UUID | None = None
    model_id: uuid.UUID | None = None


class EvidenceRead(BaseModel):
    """An evidence item as the API returns it; the file itself is at `.../file`."""

    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    workspace: str
    type: EvidenceType
    title: str
    url: str | None
    owner: str
    expires_on: date | None
    expired: bool
    system_id: uuid.UUID | None
    model_id: uuid.UUID | None
    has_file: bool
    file_name: str | None
    file_size: int | None
    file_sha256: str | None
    content_type: str | None
    created_at: datetime
    created_by: str
    updated_at: datetime
    updated_by: str
    etag: str
