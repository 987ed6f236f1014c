"""Examples in a schema's OpenAPI document, declared as the examples themselves.

    class KeyCreate(BaseModel):
        model_config = examples_config({"name": "support-chatbot"}, extra="forbid")

is `ConfigDict(extra="forbid", json_schema_extra={"examples": [{"name": "support-chatbot"}]})`.
"""

from __future__ import annotations

from typing import Any, Unpack

from pydantic import ConfigDict

__all__ = ["examples_config"]


def examples_config(*examples: dict[str, Any], **config: Unpack[ConfigDict]) -> ConfigDict:
    """Return the model config `config` whose JSON schema lists `examples`, in that order."""
    return ConfigDict(**config, json_schema_extra={"examples": list(examples)})
