"""The AI system API contract."""

from __future__ import annotations

import uuid
from datetime import datetime
from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field

from modelyard_common.schema_examples import examples_config
from modelyard_registry.schemas_common import LongText, Name, ShortText, Tags


class SystemStatus(StrEnum):
    draft = "draft"
    in_use = "in_use"
    retired = "retired"


class RiskLevel(StrEnum):
    """EU AI Act risk categories."""

    unacceptable = "unacceptable"
    high = "high"
    limited = "limited"
    minimal = "minimal"


class AIActRole(StrEnum):
    """The organisation's role for this system under the AI Act (Art. 3(3), 3(4))."""

    provider = "provider"
    deployer = "deployer"
    both = "both"


class AISystemCreate(BaseModel):
    """A new AI system."""

    model_config = examples_config(
        {
            "name": "checkout-risk",
            "description": "Blocks risky card payments at checkout.",
            "purpose": "Fraud prevention",
            "owner": "payments-team",
            "status": "draft",
            "risk_level": "high",
            "risk_justification": "Annex III 5(b): creditworthiness of people.",
            "ai_act_role": "deployer",
            "tags": ["payments"],
        },
        extra="forbid",
    )

    name: Name
    description: LongText = ""
    purpose: LongText = ""
    owner: ShortText = ""
    status: SystemStatus = SystemStatus.draft
    risk_level: RiskLevel
    risk_justification: LongText = Field(
        default="", description="Why this risk level: the Annex III area, Art. 6(3) grounds..."
    )
    ai_act_role: AIActRole = AIActRole.deployer
    tags: Tags = Field(default_factory=list)


class AISystemUpdate(BaseModel):
    """Fields to change; omitted fields keep their value."""

    model_config = examples_config({"status": "retired"}, extra="forbid")

    name: Name | None = None
    description: LongText | None = None
    purpose: LongText | None = None
    owner: ShortText | None = None
    status: SystemStatus | None = None
    risk_level: RiskLevel | None = None
    risk_justification: LongText | None = None
    ai_act_role: AIActRole | None = None
    tags: Tags | None = None


class AISystemRead(BaseModel):
    """An AI system as the API returns it."""

    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    workspace: str
    name: str
    description: str
    purpose: str
    owner: str
    status: SystemStatus
    risk_level: RiskLevel
    risk_justification: str
    ai_act_role: AIActRole
    tags: list[str]
    archived: bool
    archived_at: datetime | None
    created_at: datetime
    created_by: str
    updated_at: datetime
    updated_by: str
    etag: str
