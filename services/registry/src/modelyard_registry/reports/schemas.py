"""The inventory export/import contract: one record per model, system, link, obligation..."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, Field

INVENTORY_FORMAT = "modelyard-inventory/1"
KINDS = ("model", "system", "link", "obligation", "evidence")
# CSV columns: `kind` says which record a row is; each kind uses its own columns.
CSV_COLUMNS = (
    "kind",
    "name",
    "description",
    "learning_type",
    "functionality",
    "foundations",
    "provider",
    "tags",
    "properties",
    "approval",
    "purpose",
    "owner",
    "status",
    "risk_level",
    "risk_justification",
    "ai_act_role",
    "system",
    "model",
    "description_of_use",
    "code",
    "note",
    "type",
    "title",
    "url",
    "expires_on",
    "file_name",
    "file_sha256",
)
# Cells that hold lists or objects are JSON in CSV.
JSON_CELLS = ("tags", "properties")


class ExportFormat(StrEnum):
    json = "json"
    csv = "csv"


class Inventory(BaseModel):
    """A workspace's inventory. Approvals are exported for reading; import never sets them."""

    format: str = Field(default=INVENTORY_FORMAT, examples=[INVENTORY_FORMAT])
    workspace: str | None = None
    exported_at: datetime | None = None
    models: list[dict[str, Any]] = Field(default_factory=list, max_length=10_000)
    systems: list[dict[str, Any]] = Field(default_factory=list, max_length=10_000)
    links: list[dict[str, Any]] = Field(default_factory=list, max_length=50_000)
    obligations: list[dict[str, Any]] = Field(default_factory=list, max_length=50_000)
    evidence: list[dict[str, Any]] = Field(default_factory=list, max_length=50_000)


class RowProblem(BaseModel):
    """One invalid record: where it is, what is wrong."""

    row: int = Field(description="1-based: the record's position (its line in a CSV file).")
    kind: str
    field: str | None
    message: str


class ImportReport(BaseModel):
    """What an import did, or (dry run, or any error) would do; nothing is kept on error."""

    dry_run: bool
    applied: bool
    created: dict[str, int]
    errors: list[RowProblem]
