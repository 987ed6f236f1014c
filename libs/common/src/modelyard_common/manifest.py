"""The run manifest of a model version: how a device runs an AI project.

Shared by the deployer (validates it at upload) and the device agent (runs it).
"""

from __future__ import annotations

import re
from enum import StrEnum
from typing import Annotated, Any, Self

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

MANIFEST_FILENAMES = ("modelyard.json", "modelyard.yaml", "modelyard.yml")

_HANDLER_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,63}$")
_IMAGE_NAME = re.compile(r"^[a-z0-9][a-z0-9._/:@-]{0,254}$")
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,127}$")


class InputType(StrEnum):
    json = "json"
    image = "image"


class Protocol(StrEnum):
    handlers = "handlers"
    openai = "openai"


class Handler(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: Annotated[str, Field(description="Python function name in the main file.")]
    description: Annotated[str, Field(max_length=512)] = ""

    @field_validator("name")
    @classmethod
    def _valid_identifier(cls, value: str) -> str:
        if not _HANDLER_NAME.match(value):
            raise ValueError("must be a Python identifier of at most 64 characters")
        return value


class Manifest(BaseModel):
    """How to run one AI project: image or Dockerfile, entry point, limits, protocol."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "image": "modelyard/python-base:bookworm",
                    "language": "python3",
                    "main": "main.py",
                    "handlers": [{"name": "predict", "description": "Classify a JSON record"}],
                    "input_type": "json",
                    "port": 8080,
                    "max_ram_mb": 256,
                    "cores": 0.5,
                    "env": {"LOG_LEVEL": "info"},
                    "health_path": "/healthz",
                    "protocol": "handlers",
                }
            ]
        },
    )

    image: Annotated[str | None, Field(description="Base image to run the project in.")] = None
    dockerfile: Annotated[
        bool, Field(description="Build the project's own Dockerfile instead of using `image`.")
    ] = False
    language: Annotated[str, Field(pattern=r"^[a-z][a-z0-9.+-]{0,31}$")] = "python3"
    main: Annotated[str, Field(min_length=1, max_length=255)] = "main.py"
    handlers: list[Handler] = Field(default_factory=list, max_length=64)
    input_type: InputType = InputType.json
    port: Annotated[int, Field(ge=1, le=65535)] = 8080
    max_ram_mb: Annotated[int, Field(ge=16, le=1_048_576)] = 512
    cores: Annotated[float, Field(gt=0, le=256)] = 1.0
    env: dict[str, str] = Field(default_factory=dict)
    health_path: Annotated[str, Field(pattern=r"^/[\x21-\x7e]*$", max_length=255)] = "/healthz"
    protocol: Protocol = Protocol.handlers

    @field_validator("image")
    @classmethod
    def _valid_image(cls, value: str | None) -> str | None:
        if value is not None and not _IMAGE_NAME.match(value):
            raise ValueError("is not a valid image reference")
        return value

    @field_validator("main")
    @classmethod
    def _relative_main(cls, value: str) -> str:
        parts = value.replace("\\", "/").split("/")
        if value.startswith("/") or ".." in parts or any(p == "" for p in parts):
            raise ValueError("must be a relative path inside the project")
        return value

    @field_validator("env")
    @classmethod
    def _valid_env(cls, value: dict[str, str]) -> dict[str, str]:
        for key in value:
            if not _ENV_NAME.match(key):
                raise ValueError(f"{key!r} is not a valid environment variable name")
        return value

    @model_validator(mode="after")
    def _image_or_dockerfile(self) -> Self:
        if self.dockerfile == (self.image is not None):
            raise ValueError("give exactly one of `image` or `dockerfile: true`")
        if self.protocol is Protocol.handlers and not self.handlers:
            raise ValueError("a `handlers` protocol project lists at least one handler")
        return self


def parse_manifest_document(filename: str, raw: bytes) -> dict[str, Any]:
    """Return the mapping held by a `modelyard.json` / `modelyard.yaml` file's bytes."""
    import json

    import yaml

    text = raw.decode("utf-8")
    loaded = json.loads(text) if filename.endswith(".json") else yaml.safe_load(text)
    if not isinstance(loaded, dict):
        raise ValueError(f"{filename} must hold a mapping")
    return loaded
