"""The model approval API contract."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import AliasGenerator, BaseModel, ConfigDict, Field, model_validator

from modelyard_common.governance import ApprovalState
from modelyard_common.schema_examples import examples_config
from modelyard_registry.ai_models.schemas import ApprovalConditions, Comment, Conditions


class ReviewRequest(BaseModel):
    """Ask for the model to be reviewed."""

    model_config = examples_config(
        {"comment": "Bias report attached; ready for review."}, extra="forbid"
    )

    comment: Comment


class Decision(BaseModel):
    """A reviewer's decision; `restricted` needs its conditions."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {"decision": "approved", "comment": "Model card and bias report reviewed."},
                {
                    "decision": "restricted",
                    "comment": "Fine for the pilot sites only.",
                    "conditions": {
                        "text": "Pilot sites; human review of every refusal.",
                        "device_labels": {"site": ["lyon", "porto"]},
                        "gateway_groups": ["helpdesk-pilot"],
                    },
                },
            ],
            # `_conditions_match_decision`, for clients: conditions exactly when restricted.
            "if": {"properties": {"decision": {"const": "restricted"}}},
            "then": {"required": ["conditions"], "properties": {"conditions": {"type": "object"}}},
            "else": {"properties": {"conditions": {"type": "null"}}},
        },
    )

    decision: Literal["approved", "restricted", "blocked"]
    comment: Comment
    conditions: ApprovalConditions | None = None

    @model_validator(mode="after")
    def _conditions_match_decision(self) -> Decision:
        if self.decision == "restricted" and self.conditions is None:
            raise ValueError("a restricted decision needs its conditions")
        if self.decision != "restricted" and self.conditions is not None:
            raise ValueError("only a restricted decision carries conditions")
        return self


class Retirement(BaseModel):
    """Retire the model for good: nothing may deploy or serve it again."""

    model_config = ConfigDict(extra="forbid")

    comment: Comment


class ApprovalRead(BaseModel):
    """A model's approval: its state, and who asked and decided, when and why."""

    # Read from a model row: each field is its `approval_<field>` column, the state `approval`
    # (and by name too: FastAPI validates the view again as it sends it).
    model_config = ConfigDict(
        from_attributes=True,
        populate_by_name=True,
        alias_generator=AliasGenerator(validation_alias=lambda field: f"approval_{field}"),
    )

    state: ApprovalState = Field(validation_alias="approval")
    conditions: Conditions
    requested_by: str | None
    requested_at: datetime | None
    request_comment: str | None
    decided_by: str | None
    decided_at: datetime | None
    decision_comment: str | None
