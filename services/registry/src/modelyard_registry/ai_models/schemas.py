"""The AI model API contract."""

from __future__ import annotations

import uuid
from datetime import datetime
from enum import StrEnum
from typing import Annotated

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, StringConstraints

from modelyard_common.governance import ApprovalState
from modelyard_common.schema_examples import examples_config
from modelyard_registry.schemas_common import LongText, Name, Properties, ShortText, Tags


class LearningType(StrEnum):
    supervised = "supervised"
    unsupervised = "unsupervised"
    semi_supervised = "semi_supervised"
    reinforcement = "reinforcement"


LEARNING_TYPE_DEFINITIONS: dict[LearningType, tuple[str, str]] = {
    LearningType.supervised: (
        "Supervised learning",
        "The model learns from examples that come with the right answer (labelled data): "
        "each input is paired with the output it should produce, and training reduces the "
        "gap between the model's predictions and those labels. Typical uses are "
        "classification and regression, such as spam filtering or price estimation.",
    ),
    LearningType.unsupervised: (
        "Unsupervised learning",
        "The model learns structure from data that carries no labels: it groups similar "
        "items, finds the directions along which the data varies, or flags what does not fit. "
        "Typical uses are clustering, dimensionality reduction and anomaly detection.",
    ),
    LearningType.semi_supervised: (
        "Semi-supervised learning",
        "The model learns from a small set of labelled examples together with a large set of "
        "unlabelled ones, using the structure of the unlabelled data to generalise beyond the "
        "few labels. It suits domains where labelling is expensive, such as medical imaging.",
    ),
    LearningType.reinforcement: (
        "Reinforcement learning",
        "An agent learns by acting in an environment and receiving rewards or penalties, "
        "improving a policy that maximises its long-term reward. Typical uses are control, "
        "robotics, games and recommendation policies.",
    ),
}


Comment = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=2000)]
LABEL = r"^[\w.\-/]+$"
LabelKey = Annotated[str, StringConstraints(min_length=1, max_length=63, pattern=LABEL)]
LabelValue = Annotated[str, StringConstraints(min_length=1, max_length=63, pattern=r"^[\w.\-]+$")]
GroupName = Annotated[str, StringConstraints(min_length=1, max_length=200, pattern=r"^[^\s\x00]+$")]


class ApprovalConditions(BaseModel):
    """What a `restricted` approval allows: where the model may be deployed and served."""

    model_config = ConfigDict(extra="forbid")

    text: Comment = Field(description="The conditions in words, for people.")
    device_labels: dict[LabelKey, list[LabelValue]] = Field(
        default_factory=dict,
        max_length=20,
        json_schema_extra={"propertyNames": {"minLength": 1, "maxLength": 63, "pattern": LABEL}},
        description="A target device must carry, for every key listed, one of its values.",
    )
    gateway_groups: list[GroupName] = Field(
        default_factory=list,
        max_length=100,
        description="The only gateway groups that may serve the model (empty: none).",
    )


# A model row keeps no conditions as NULL (or, defensively, as an empty object).
Conditions = Annotated[ApprovalConditions | None, BeforeValidator(lambda stored: stored or None)]


class LearningTypeRead(BaseModel):
    id: LearningType
    label: str
    definition: str


class AIModelCreate(BaseModel):
    """A new AI model."""

    model_config = examples_config(
        {
            "name": "fraud-detector",
            "description": "## Features\nScores card payments.\n\n## Known limits\n"
            "Not trained on B2B payments.",
            "learning_type": "supervised",
            "functionality": "fraud detection",
            "foundations": "gradient boosted trees",
            "provider": "in-house",
            "tags": ["payments", "risk"],
            "properties": {"accuracy": {"type": "number", "value": 0.97}},
        },
        extra="forbid",
    )

    name: Name
    description: LongText = Field(default="", description="Markdown: features, known limits.")
    learning_type: LearningType
    functionality: ShortText = Field(default="", description="What it is used for.")
    foundations: ShortText = Field(default="", description='Architecture, e.g. "transformer".')
    provider: ShortText = ""
    tags: Tags = Field(default_factory=list)
    properties: Properties = Field(default_factory=dict)


class AIModelUpdate(BaseModel):
    """Fields to change; omitted fields keep their value."""

    model_config = examples_config({"tags": ["nlp"]}, extra="forbid")

    name: Name | None = None
    description: LongText | None = None
    learning_type: LearningType | None = None
    functionality: ShortText | None = None
    foundations: ShortText | None = None
    provider: ShortText | None = None
    tags: Tags | None = None
    properties: Properties | None = None


class AIModelRead(BaseModel):
    """An AI model as the API returns it."""

    # By name too: FastAPI validates the view again as it sends it.
    model_config = ConfigDict(from_attributes=True, populate_by_name=True)

    id: uuid.UUID
    workspace: str
    name: str
    description: str
    learning_type: LearningType
    functionality: str
    foundations: str
    provider: str
    tags: list[str]
    properties: dict[str, dict[str, object]]
    archived: bool
    archived_at: datetime | None
    approval: ApprovalState = Field(
        description="Review state; only approved (or restricted) models may be deployed and served."
    )
    approval_conditions: Conditions = Field(
        description="Where a restricted model may run; null unless restricted."
    )
    approval_comment: str | None = Field(
        default=None,
        validation_alias="approval_decision_comment",
        description="The comment of the last approval decision (why it stands).",
    )
    created_at: datetime
    created_by: str
    updated_at: datetime
    updated_by: str
    etag: str


class ModelSystemLinkRead(BaseModel):
    """A system that uses this model, and how."""

    system_id: uuid.UUID
    system_name: str
    risk_level: str
    status: str
    description_of_use: str
    created_at: datetime
    updated_at: datetime
