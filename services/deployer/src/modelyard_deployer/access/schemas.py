"""API contract of per-model access grants."""

from __future__ import annotations

import uuid
from datetime import datetime
from enum import StrEnum
from typing import Annotated

from pydantic import BaseModel, Field

from modelyard_common.schema_examples import examples_config


class AccessLevel(StrEnum):
    """What a grantee may do with one model: see, also deploy, also upload and manage grants."""

    viewer = "viewer"
    deployer = "deployer"
    editor = "editor"


class SubjectType(StrEnum):
    user = "user"
    role = "role"


class GrantCreate(BaseModel):
    """Give a user (JWT `sub`) or a role (one of the JWT `roles`) access to a model."""

    model_config = examples_config(
        {"subject_type": "user", "subject": "alice", "level": "deployer"}, extra="forbid"
    )

    subject_type: SubjectType
    subject: Annotated[str, Field(min_length=1, max_length=200)]
    level: AccessLevel


class GrantUpdate(BaseModel):
    """Change the level of a grant."""

    model_config = examples_config({"level": "editor"}, extra="forbid")

    level: AccessLevel


class Grant(BaseModel):
    """A grant as the API shows it."""

    model_config = examples_config(
        {
            "id": "1b4e28ba-2fa1-11d2-883f-0016d3cca427",
            "model_id": "0f8fad5b-d9cb-469f-a165-70867728950e",
            "subject_type": "role",
            "subject": "ml-team",
            "level": "deployer",
            "created_by": "root",
            "created_at": "2026-11-22T08:00:00Z",
            "updated_at": "2026-11-22T08:00:00Z",
            "etag": '"1"',
        }
    )

    id: uuid.UUID
    model_id: uuid.UUID
    subject_type: SubjectType
    subject: str
    level: AccessLevel
    created_by: str
    created_at: datetime
    updated_at: datetime
    etag: str
