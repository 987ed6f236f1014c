"""The run manifest of a model version: how a device runs an AI project.

Shared by the deployer (validates it at upload) and the device agent (runs it).
"""

from __future__ import annotations

import re
from enum import StrEnum
from typing import Annotated, Any, Self

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from modelyard_common.inputs import JSONInputError, loads_guarded
from modelyard_common.schema_examples import examples_config

MANIFEST_FILENAMES = ("modelyard.json", "modelyard.yaml", "modelyard.yml")
# A manifest is a handful of keys: these bounds hold any real one with room to spare.
MAX_MANIFEST_DOCUMENT_BYTES = 256 * 1024
MAX_MANIFEST_DEPTH = 16
# The smallest CPU share a model may get: Docker reads 0 nano-CPUs as "no limit", so a share
# that would round down to it is refused rather than becoming unlimited.
MIN_CORES = 0.01

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

    model_config = examples_config(
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
        },
        extra="forbid",
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
    cores: Annotated[
        float,
        Field(ge=MIN_CORES, le=256, description=f"CPU share, at least {MIN_CORES} of a core."),
    ] = 1.0
    env: dict[str, str] = Field(default_factory=dict)
    health_path: Annotated[str, Field(pattern=r"^/[\x21-\x7e]*$", max_length=255)] = "/healthz"
    protocol: Protocol = Protocol.handlers
    run_as_root: Annotated[
        bool,
        Field(
            description=(
                "Run as root with Docker's default capabilities and a writable root file system "
                "(the container keeps its own network, pids limit and CPU floor)."
            )
        ),
    ] = False

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


class ManifestDocumentError(ValueError):
    """A manifest file that cannot be read as a manifest document (answered 422 at upload)."""


def _yaml_loader() -> Any:
    import yaml

    class ManifestLoader(yaml.SafeLoader):
        """SafeLoader without anchors and aliases, and with a nesting limit.

        An alias makes a document expand past its size (445 bytes can cost seconds of CPU);
        a manifest has no use for them, so the first anchor or alias ends the parse.
        """

        depth = 0

        def compose_node(self, parent: Any, index: Any) -> Any:
            event = self.peek_event()  # type: ignore[no-untyped-call]
            if isinstance(event, yaml.AliasEvent) or getattr(event, "anchor", None):
                raise ManifestDocumentError(
                    "YAML anchors and aliases (&, *) are not allowed in a manifest"
                )
            self.depth += 1
            if self.depth > MAX_MANIFEST_DEPTH:
                raise ManifestDocumentError(
                    f"the manifest nests deeper than {MAX_MANIFEST_DEPTH} levels"
                )
            try:
                return super().compose_node(parent, index)
            finally:
                self.depth -= 1

    return ManifestLoader


def parse_manifest_document(filename: str, raw: bytes) -> dict[str, Any]:
    """Return the mapping held by a `modelyard.json` / `modelyard.yaml` file's bytes.

    Raises ManifestDocumentError (a ValueError) for a document too large or too deep, with YAML
    anchors or aliases, or with NaN/Infinity; json.JSONDecodeError, yaml.YAMLError or
    UnicodeDecodeError when it is not JSON, YAML or UTF-8.
    """
    import yaml

    if len(raw) > MAX_MANIFEST_DOCUMENT_BYTES:
        raise ManifestDocumentError(
            f"{filename} is larger than {MAX_MANIFEST_DOCUMENT_BYTES} bytes"
        )
    text = raw.decode("utf-8")
    if filename.endswith(".json"):
        try:
            loaded = loads_guarded(text, max_depth=MAX_MANIFEST_DEPTH)
        except JSONInputError as exc:
            where = ".".join(str(p) for p in exc.path)
            raise ManifestDocumentError(f"{exc}" + (f" ({where})" if where else "")) from exc
    else:
        loaded = yaml.load(text, Loader=_yaml_loader())  # noqa: S506 - a SafeLoader subclass
    if not isinstance(loaded, dict):
        raise ManifestDocumentError(f"{filename} must hold a mapping")
    return loaded
