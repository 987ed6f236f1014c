"""The examples a schema shows in the OpenAPI document, given where the schema is declared.

    class Device(BaseModel):
        model_config = with_examples({"name": "press-line-3"}, extra="forbid")

is pydantic's `ConfigDict(extra="forbid", json_schema_extra={"examples": [...]})`, written once.
"""

from __future__ import annotations

from typing import Unpack

from pydantic import ConfigDict
from pydantic.config import JsonDict

__all__ = ["with_examples"]


def with_examples(*examples: JsonDict, **config: Unpack[ConfigDict]) -> ConfigDict:
    """Return a model config listing `examples` in the model's JSON schema (and `config`)."""
    return ConfigDict(**config, json_schema_extra={"examples": [*examples]})
