"""The system-model link API contract."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from modelyard_common.schema_examples import examples_config

DescriptionOfUse = Annotated[
    str, StringConstraints(strip_whitespace=True, min_length=1, max_length=5000)
]


class LinkCreate(BaseModel):
    """Attach a model to a system, saying how the system uses it."""

    model_config = examples_config(
        {
            "model_id": "0f8fad5b-d9cb-469f-a165-70867728950e",
            "description_of_use": "Scores each payment before authorisation.",
        },
        extra="forbid",
    )

    model_id: uuid.UUID
    description_of_use: DescriptionOfUse = Field(description="How this system uses this model.")


class LinkUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    description_of_use: DescriptionOfUse


class LinkRead(BaseModel):
    """A model as used by a system."""

    system_id: uuid.UUID
    model_id: uuid.UUID
    model_name: str
    learning_type: str
    model_archived: bool
    description_of_use: str
    created_at: datetime
    created_by: str
    updated_at: datetime
    updated_by: str
    etag: str
