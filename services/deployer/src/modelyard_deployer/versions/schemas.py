"""API contract of model versions."""

from __future__ import annotations

import uuid
from datetime import datetime

from pydantic import BaseModel, Field

from modelyard_common.manifest import Manifest
from modelyard_common.schema_examples import examples_config

TITLE_MAX = 30
COMMENT_MAX = 512


class ModelVersion(BaseModel):
    """An uploaded AI project (zip) and the manifest that says how to run it. Immutable."""

    model_config = examples_config(
        {
            "id": "5b0c1f4e-8a51-4a53-9a1e-9fb8b8a3d0aa",
            "model_id": "0f8fad5b-d9cb-469f-a165-70867728950e",
            "number": 3,
            "title": "Pruned weights",
            "comment": "40% smaller, same accuracy on the holdout set.",
            "manifest": Manifest.model_config["json_schema_extra"]["examples"][0],  # type: ignore[index]
            "sha256": "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08",
            "size_bytes": 48213,
            "uncompressed_bytes": 131072,
            "file_count": 4,
            "artifact_url": "/v1/versions/5b0c1f4e-8a51-4a53-9a1e-9fb8b8a3d0aa/artifact",
            "created_by": "alice",
            "created_at": "2026-11-22T08:00:00Z",
        }
    )

    id: uuid.UUID
    model_id: uuid.UUID
    number: int = Field(description="1, 2, 3... per model; never reused.")
    title: str
    comment: str
    manifest: Manifest
    sha256: str = Field(description="Hex SHA-256 of the zip, computed while it was uploaded.")
    size_bytes: int
    uncompressed_bytes: int
    file_count: int
    artifact_url: str = Field(description="Where the zip is downloaded (range requests work).")
    created_by: str
    created_at: datetime
