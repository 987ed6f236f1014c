"""The OpenAI-compatible contract as documented in OpenAPI (requests pass through unvalidated)."""

from __future__ import annotations

from typing import Any, Literal

import orjson
from pydantic import BaseModel, Field

from modelyard_common.schema_examples import examples_config


class OpenAIErrorDetail(BaseModel):
    message: str
    type: str
    code: str | None = None
    param: str | None = None
    attempts: list[dict[str, Any]] | None = Field(
        default=None,
        description="On a 503: each instance with its reason `code` (e.g. `connect_failed`, "
        "`first_byte_timeout`, `http_5xx`, `rate_limited`, `at_capacity`, `deadline_exceeded`) "
        "and whether it was `tried`; never upstream addresses or error texts.",
    )
    attempt_count: int | None = Field(
        default=None, description="On a 503: how many upstream requests this request made."
    )


class OpenAIError(BaseModel):
    """An error in OpenAI's shape, as the official SDKs expect it."""

    model_config = examples_config(
        {
            "error": {
                "message": "The model 'chat' does not exist or you do not have access.",
                "type": "invalid_request_error",
                "code": "model_not_found",
                "param": "model",
            }
        }
    )

    error: OpenAIErrorDetail


class ModelObject(BaseModel):
    """A model group as OpenAI's `GET /v1/models` lists it."""

    id: str = Field(description="The group's name: what clients send as `model`.")
    object: Literal["model"] = "model"
    created: int
    owned_by: str = "modelyard"


class ModelList(BaseModel):
    object: Literal["list"] = "list"
    data: list[ModelObject]


class PassThroughRequest(BaseModel):
    """An OpenAI request body; every field besides `model` and `stream` passes through as is."""

    model_config = examples_config(
        {
            "model": "chat",
            "messages": [{"role": "user", "content": "Hello"}],
            "stream": False,
        },
        extra="allow",
    )

    model: str = Field(description="A model group's name; rewritten to the instance's model.")
    stream: bool = False


def error_body(
    message: str,
    *,
    type_: str,
    code: str | None,
    param: str | None = None,
    attempts: list[dict[str, Any]] | None = None,
    attempt_count: int | None = None,
) -> bytes:
    """Return an OpenAI-shaped error body (with each instance's reason code on a 503)."""
    detail: dict[str, Any] = {"message": message, "type": type_, "code": code, "param": param}
    if attempts is not None:
        detail["attempts"] = attempts
    if attempt_count is not None:
        detail["attempt_count"] = attempt_count
    return orjson.dumps({"error": detail})


OPENAI_ERRORS: dict[int | str, dict[str, Any]] = {
    status: {"model": OpenAIError, "description": text}
    for status, text in (
        (400, "The request body is not valid JSON or names no model."),
        (401, "Missing or invalid API key."),
        (
            403,
            "The workspace's policy gate refuses the registry model the group follows "
            "(blocked, retired, or restricted to other groups): code `model_not_approved`.",
        ),
        (404, "The key may not use this model group, or it does not exist."),
        (413, "The request body is too large."),
        (
            503,
            "Every instance of the group was tried and failed (or the request's deadline ran "
            "out); `attempts` gives each instance's reason code, `attempt_count` the requests.",
        ),
    )
}
