"""The policy gate API contract."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from pydantic import BaseModel, Field, StringConstraints

from modelyard_common.governance import Gate
from modelyard_common.schema_examples import examples_config

Comment = Annotated[str, StringConstraints(strip_whitespace=True, max_length=2000)]


class PolicyRead(BaseModel):
    """The workspace's gate: `enforce` refuses, `warn` allows and warns, `off` checks nothing."""

    model_config = examples_config(
        {
            "workspace": "acme",
            "gate": "enforce",
            "is_default": False,
            "comment": "Production workspace: nothing unapproved runs.",
            "updated_by": "alice",
            "updated_at": "2026-12-02T10:00:00Z",
        }
    )

    workspace: str
    gate: Gate = Field(
        description="enforce: the deployer refuses unapproved models and stops blocked ones, the "
        "gateway refuses to bind or serve them; warn: everything runs and every step carries a "
        "warning; off: approvals are recorded, not checked."
    )
    is_default: bool = Field(description="True while the workspace never chose a gate.")
    comment: str
    updated_by: str | None
    updated_at: datetime | None


class PolicyUpdate(BaseModel):
    """Set the workspace's gate (admin)."""

    model_config = examples_config(
        {"gate": "warn", "comment": "Pilot: warn for a month."}, extra="forbid"
    )

    gate: Gate
    comment: Comment = ""
