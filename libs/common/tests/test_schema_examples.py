"""`examples_config` puts a schema's examples in its JSON schema, beside the rest of its config."""

from __future__ import annotations

import pytest
from pydantic import BaseModel, ValidationError

from modelyard_common.schema_examples import examples_config


class Label(BaseModel):
    model_config = examples_config(
        {"key": "site", "value": "plant-1"}, {"key": "line"}, extra="forbid"
    )

    key: str
    value: str = ""


def test_the_examples_are_in_the_json_schema_in_their_order() -> None:
    assert Label.model_json_schema()["examples"] == [
        {"key": "site", "value": "plant-1"},
        {"key": "line"},
    ]


def test_the_rest_of_the_config_applies() -> None:
    with pytest.raises(ValidationError, match="extra"):
        Label.model_validate({"key": "site", "colour": "red"})
