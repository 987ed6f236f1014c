"""The OpenAPI document says what the services really answer, so generated clients are right.

FastAPI's defaults differ from what the shared problem handlers send; `contract_openapi` fixes
the document once for every service:

* every error whose schema is `Problem` (or FastAPI's 422 `HTTPValidationError`) is documented as
  `application/problem+json` with the `Problem` schema, the only type it is sent as;
* an operation with a request body documents 400 (the body cannot be decoded) and 413 (the body
  is larger than the service reads), both problems;
* `If-Match` is a required header wherever a missing one is answered 428 (the route still answers
  428, not 422, when it is absent);
* text never contains NUL (see `modelyard_common.inputs`): every free string, path or query
  parameter and map key says so with a pattern.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fastapi import FastAPI

from modelyard_common.errors import PROBLEM_MEDIA_TYPE, Problem

PROBLEM_REF = "#/components/schemas/Problem"
_FASTAPI_422_REF = "#/components/schemas/HTTPValidationError"
_BODY_ERRORS = {
    "400": "Bad Request: the body cannot be decoded (not UTF-8 or not JSON).",
    "413": "Content Too Large: the body is larger than the service reads.",
}
_METHODS = {"get", "put", "post", "delete", "patch", "options", "head", "trace"}
NO_NUL_PATTERN = r"^[^\u0000]*$"


def install_contract_openapi(app: FastAPI) -> None:
    """Make `app.openapi()` return the corrected document (built once, then cached)."""
    build: Callable[[], dict[str, Any]] = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            app.openapi_schema = contract_openapi(build())
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]


def contract_openapi(document: dict[str, Any]) -> dict[str, Any]:
    """Return `document` with problem media types, body errors and required If-Match fixed."""
    schemas = document.setdefault("components", {}).setdefault("schemas", {})
    uses_problem = False
    for item in document.get("paths", {}).values():
        for method, operation in item.items():
            if method not in _METHODS:
                continue
            responses: dict[str, Any] = operation.setdefault("responses", {})
            for status, response in responses.items():
                if status.isdigit() and int(status) >= 400 and _as_problem(response):
                    uses_problem = True
            if "401" in responses and "403" not in responses:
                # Any signed-in route answers 403 for a workspace the token does not grant
                # (`X-Modelyard-Workspace`), whatever role it needs.
                responses["403"] = _problem_response(
                    "The token does not grant the chosen workspace, or lacks the role."
                )
                uses_problem = True
            if "requestBody" in operation:
                for status, description in _BODY_ERRORS.items():
                    if status not in responses:
                        responses[status] = _problem_response(description)
                        uses_problem = True
            if "428" in responses:
                for parameter in operation.get("parameters", []):
                    if parameter.get("in") == "header" and parameter.get("name") == "If-Match":
                        parameter["required"] = True
                        parameter["schema"] = {"type": "string", "minLength": 1}
    for item in document.get("paths", {}).values():
        for method, operation in item.items():
            if method in _METHODS:
                for parameter in operation.get("parameters", []):
                    if parameter.get("in") in ("path", "query"):
                        _no_nul(parameter.get("schema"))
    for name, schema in schemas.items():
        if name not in ("Problem", "FieldError"):  # an error may quote the offending input
            _no_nul(schema)
    if uses_problem and "Problem" not in schemas:
        problem = Problem.model_json_schema(ref_template="#/components/schemas/{model}")
        schemas.update(problem.pop("$defs", {}))
        schemas["Problem"] = problem
    if not _mentions(document.get("paths", {}), _FASTAPI_422_REF):
        schemas.pop("HTTPValidationError", None)
        if not _mentions(schemas, "#/components/schemas/ValidationError"):
            schemas.pop("ValidationError", None)
    return document


def _as_problem(response: dict[str, Any]) -> bool:
    """Document a problem response under the problem media type; return whether it is one."""
    content: dict[str, Any] = response.get("content") or {}
    json_media = content.get("application/json") or {}
    ref = (json_media.get("schema") or {}).get("$ref")
    problem_media = content.get(PROBLEM_MEDIA_TYPE)
    if ref not in (PROBLEM_REF, _FASTAPI_422_REF) and problem_media is None:
        return False
    if ref in (PROBLEM_REF, _FASTAPI_422_REF):
        content.pop("application/json")
    media = dict(problem_media or {})
    media["schema"] = {"$ref": PROBLEM_REF}
    content[PROBLEM_MEDIA_TYPE] = media
    response["content"] = content
    return True


def _problem_response(description: str) -> dict[str, Any]:
    return {
        "description": description,
        "content": {PROBLEM_MEDIA_TYPE: {"schema": {"$ref": PROBLEM_REF}}},
    }


def _mentions(value: Any, ref: str) -> bool:
    if isinstance(value, dict):
        return any(v == ref if k == "$ref" else _mentions(v, ref) for k, v in value.items())
    if isinstance(value, list):
        return any(_mentions(v, ref) for v in value)
    return False


def _no_nul(schema: Any) -> None:
    """Say in `schema` (recursively) that its free strings and map keys hold no NUL."""
    if isinstance(schema, list):
        for item in schema:
            _no_nul(item)
        return
    if not isinstance(schema, dict):
        return
    types = schema.get("type")
    is_string = types == "string" or (isinstance(types, list) and "string" in types)
    # Formats such as uuid and date-time exclude a NUL already; a write-only secret does not.
    free = schema.get("format") in (None, "password")
    if is_string and free and not {"enum", "const", "contentMediaType"} & schema.keys():
        if "pattern" not in schema:
            schema["pattern"] = NO_NUL_PATTERN
        elif "[^" in schema["pattern"]:  # a negated class could let a NUL through
            schema.setdefault("not", {"pattern": "\\u0000"})
    if schema.get("type") == "object" and schema.get("additionalProperties") not in (None, False):
        schema.setdefault("propertyNames", {"pattern": NO_NUL_PATTERN})
    for key, value in schema.items():
        if key in ("properties", "$defs", "patternProperties"):
            for item in value.values():
                _no_nul(item)
        elif key in ("items", "additionalProperties", "anyOf", "oneOf", "allOf", "then", "else"):
            _no_nul(value)
