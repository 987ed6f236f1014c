"""RFC 9457 problem details: domain errors carry their status; one handler renders them."""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, TypeVar

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import compile_path
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from modelyard_common.schema_examples import examples_config

PROBLEM_MEDIA_TYPE = "application/problem+json"
PROBLEM_BASE = "https://modelyard.dev/problems/"

log = logging.getLogger("modelyard.errors")

T = TypeVar("T")


class FieldError(BaseModel):
    """One invalid field of a request."""

    loc: list[str | int] = Field(description="Where the field is: body, query, path, header.")
    field: str = Field(description="Dotted name of the field inside its location.")
    message: str
    type: str


class Problem(BaseModel):
    """An RFC 9457 problem details object."""

    model_config = examples_config(
        {
            "type": "https://modelyard.dev/problems/not-found",
            "title": "Not Found",
            "status": 404,
            "detail": "No model 0f8fad5b-d9cb-469f-a165-70867728950e in this workspace.",
        },
        extra="allow",
    )

    type: str = "about:blank"
    title: str
    status: int
    detail: str | None = None
    instance: str | None = None
    errors: list[FieldError] | None = None


# The problems every service answers with, by status: their title and the slug of their type.
STANDARD_PROBLEMS: dict[int, tuple[str, str]] = {
    400: ("Bad Request", "bad-request"),
    401: ("Unauthorized", "unauthorized"),
    403: ("Forbidden", "forbidden"),
    404: ("Not Found", "not-found"),
    409: ("Conflict", "conflict"),
    412: ("Precondition Failed", "precondition-failed"),
    413: ("Content Too Large", "too-large"),
    415: ("Unsupported Media Type", "unsupported-media-type"),
    422: ("Unprocessable Content", "validation"),
    428: ("Precondition Required", "precondition-required"),
    503: ("Service Unavailable", "unavailable"),
}


class ProblemError(Exception):
    """A domain error that becomes a problem+json response.

    A subclass declares its `status`, `title` and `slug` as class attributes, or names one of
    the `STANDARD_PROBLEMS` by its status: `class NotFoundError(ProblemError, status=404)`.
    """

    status: int = 500
    title: str = "Internal Server Error"
    slug: str = "internal"

    def __init_subclass__(cls, *, status: int | None = None, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if status is not None:
            cls.status = status
            cls.title, cls.slug = STANDARD_PROBLEMS[status]

    def __init__(
        self,
        detail: str | None = None,
        *,
        errors: Sequence[FieldError] | None = None,
        headers: dict[str, str] | None = None,
        **extra: Any,
    ) -> None:
        super().__init__(detail or self.title)
        self.detail = detail
        self.errors = list(errors) if errors else None
        self.headers = headers
        self.extra = extra

    def to_problem(self, instance: str | None = None) -> dict[str, Any]:
        """Return the problem details body of this error."""
        body: dict[str, Any] = {
            "type": PROBLEM_BASE + self.slug,
            "title": self.title,
            "status": self.status,
        }
        if self.detail:
            body["detail"] = self.detail
        if instance:
            body["instance"] = instance
        if self.errors:
            body["errors"] = [e.model_dump() for e in self.errors]
        body.update(self.extra)
        return body


class BadRequestError(ProblemError, status=400): ...


class UnauthorizedError(ProblemError, status=401):
    def __init__(self, detail: str | None = None, **extra: Any) -> None:
        super().__init__(detail, headers={"WWW-Authenticate": "Bearer"}, **extra)


class ForbiddenError(ProblemError, status=403): ...


class NotFoundError(ProblemError, status=404): ...


class ConflictError(ProblemError, status=409): ...


class PolicyRefusedError(ConflictError):
    """The workspace's policy gate refuses the act (the model's approval does not allow it)."""

    status, title, slug = 409, "Refused by policy", "policy-refused"


class PreconditionFailedError(ProblemError, status=412): ...


class PreconditionRequiredError(ProblemError, status=428): ...


class PayloadTooLargeError(ProblemError, status=413): ...


class UnsupportedMediaTypeError(ProblemError, status=415): ...


class UnprocessableError(ProblemError, status=422): ...


class ServiceUnavailableError(ProblemError, status=503): ...


def problem_response(body: dict[str, Any], headers: dict[str, str] | None = None) -> JSONResponse:
    """Return a JSONResponse carrying a problem body with the problem media type."""
    return JSONResponse(
        body, status_code=int(body["status"]), media_type=PROBLEM_MEDIA_TYPE, headers=headers
    )


# Where a field is: the first part of a `loc`; the rest is the field's dotted name inside it.
_LOCATIONS = {"body", "query", "path", "header", "cookie"}


def field_error(loc: list[str | int], *, message: str, type: str) -> FieldError:
    """Return the FieldError of the field at `loc` (e.g. `["body", "labels", "team"]`)."""
    inner = loc[1:] if loc and loc[0] in _LOCATIONS else loc
    return FieldError(loc=loc, field=".".join(str(p) for p in inner), message=message, type=type)


def invalid_fields(errors: Sequence[FieldError]) -> UnprocessableError:
    """Return the 422 problem listing the invalid fields of a request."""
    return UnprocessableError("The request has invalid fields.", errors=errors)


def invalid_field(
    detail: str, loc: list[str | int], *, message: str, type: str
) -> UnprocessableError:
    """Return the 422 problem `detail` naming the one invalid field at `loc`."""
    return UnprocessableError(detail, errors=[field_error(loc, message=message, type=type)])


def found(row: T | None, detail: str) -> T:
    """Return `row`; raise the 404 problem `detail` when there is none."""
    if row is None:
        raise NotFoundError(detail)
    return row


def reject_nulls(changes: Mapping[str, Any], fields: Iterable[str]) -> None:
    """Raise the 422 problem naming the first of `fields` that a partial update sets to null."""
    for field in fields:
        if field in changes and changes[field] is None:
            raise invalid_field(
                "A field cannot be null.", ["body", field], message="cannot be null", type="null"
            )


def field_errors(raw: Iterable[Any]) -> list[FieldError]:
    """Return pydantic/FastAPI validation errors as FieldError objects."""
    return [
        field_error(
            [p if isinstance(p, int) else str(p) for p in err.get("loc", ())],
            message=str(err.get("msg", "invalid")),
            type=str(err.get("type", "value_error")),
        )
        for err in raw
    ]


def blank_problem(status: int, detail: str | None, instance: str | None) -> dict[str, Any]:
    """Return the body of a problem that only its status explains (`type` about:blank)."""
    return {
        "type": "about:blank",
        "title": _reason(status),
        "status": status,
        "detail": _reason(status) if detail is None else detail,
        "instance": instance,
    }


def install_problem_handlers(app: FastAPI) -> None:
    """Make every error of `app` an RFC 9457 response, never a stack trace."""

    @app.exception_handler(ProblemError)
    async def _problem(request: Request, exc: ProblemError) -> JSONResponse:
        return problem_response(exc.to_problem(request.url.path), exc.headers)

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError) -> JSONResponse:
        if any(e.get("loc", ("",))[0] == "path" for e in exc.errors()):
            # `PATCH /v1/devices/register` reached `/v1/devices/{device_id}` only because a
            # literal path has no PATCH: the resource exists, the method does not (405).
            allowed = allowed_methods(request)
            if request.method not in allowed.split(", "):
                body = blank_problem(405, None, request.url.path)
                return problem_response(body, {"Allow": allowed})
        err = invalid_fields(field_errors(exc.errors()))
        return problem_response(err.to_problem(request.url.path))

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        body = blank_problem(exc.status_code, str(exc.detail), request.url.path)
        headers = getattr(exc, "headers", None)
        if exc.status_code == 405:
            # Starlette names only the methods of the first route matching the path.
            headers = {**(headers or {}), "Allow": allowed_methods(request)}
        return problem_response(body, headers)

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled error on %s %s", request.method, request.url.path)
        return problem_response(ProblemError("An unexpected error occurred.").to_problem())


def allowed_methods(request: Request) -> str:
    """Return the `Allow` value for the request's path: the methods the OpenAPI documents for it.

    When several documented paths match (`/models/{m}/logs` and `/models/{m}/{handler}`), the
    resource is the most specific one, the path with the most literal segments.
    """
    matching: list[tuple[int, set[str]]] = []
    for template, operations in request.app.openapi().get("paths", {}).items():
        if compile_path(template)[0].match(request.url.path):
            literal = sum(1 for part in template.split("/") if part and "{" not in part)
            matching.append((literal, {m.upper() for m in operations if m in _HTTP_METHODS}))
    best = max((literal for literal, _ in matching), default=0)
    methods: set[str] = set().union(*(found for literal, found in matching if literal == best))
    if "GET" in methods:
        methods.add("HEAD")
    return ", ".join(sorted(methods))


_HTTP_METHODS = {"get", "put", "post", "delete", "patch", "options", "head", "trace"}


def _reason(status: int) -> str:
    from http import HTTPStatus

    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Error"


def problem_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """Return OpenAPI `responses` entries documenting problem+json errors."""
    out: dict[int | str, dict[str, Any]] = {}
    for status in statuses:
        title = STANDARD_PROBLEMS[status][0] if status in STANDARD_PROBLEMS else _reason(status)
        out[status] = {
            "model": Problem,
            "description": title,
            "content": {
                PROBLEM_MEDIA_TYPE: {
                    "example": {"type": "about:blank", "title": title, "status": status}
                }
            },
        }
    return out


# Headers of a bodiless error that do not describe a problem body (it gets its own length).
_DROPPED_ON_FILL = {b"content-length", b"content-type", b"content-disposition", b"content-encoding"}


class ProblemBodyMiddleware:
    """Give every error answer a problem body: a 4xx/5xx sent without one gets one here.

    Handlers answer problems already; this covers what bypasses them: a response built as
    `Response(status_code=416)`, Starlette's own range answers, a route returning an empty error.
    Error responses that carry any body are passed on unchanged (and unbuffered past the first
    chunk), as are HEAD requests, whose answers have no body by definition.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope.get("method") == "HEAD":
            await self.app(scope, receive, send)
            return
        held: Message | None = None

        async def guarded_send(message: Message) -> None:
            nonlocal held
            if message["type"] == "http.response.start" and message["status"] >= 400:
                held = message  # wait for the first body chunk to know whether it is empty
                return
            if held is not None and message["type"] == "http.response.body":
                start, held = held, None
                if message.get("body") or message.get("more_body", False):
                    await send(start)
                    await send(message)
                    return
                await _send_problem(scope, start, send)
                return
            await send(message)

        await self.app(scope, receive, guarded_send)
        if held is not None:  # the app ended without sending a body at all
            await _send_problem(scope, held, send)


async def _send_problem(scope: Scope, start: Message, send: Send) -> None:
    status = int(start["status"])
    payload = JSONResponse(blank_problem(status, None, scope.get("path"))).body
    headers = [(k, v) for k, v in start.get("headers", []) if k.lower() not in _DROPPED_ON_FILL]
    headers += [
        (b"content-type", PROBLEM_MEDIA_TYPE.encode()),
        (b"content-length", str(len(payload)).encode()),
    ]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": payload, "more_body": False})
