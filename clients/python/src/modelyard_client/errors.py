"""Errors of the SDK: an API error carries the service's RFC 9457 problem document."""

from __future__ import annotations

from typing import Any


class ModelyardError(Exception):
    """Base class of every error the SDK raises."""


class TransportError(ModelyardError):
    """The service could not be reached (after the retries an idempotent call gets)."""

    def __init__(self, message: str, *, url: str) -> None:
        super().__init__(message)
        self.url = url


class ApiError(ModelyardError):
    """A service answered with an error status; `problem` is its problem+json body."""

    def __init__(self, *, status: int, problem: dict[str, Any], method: str, url: str) -> None:
        self.status = status
        self.problem = problem
        self.method = method
        self.url = url
        super().__init__(self.one_line())

    @property
    def title(self) -> str:
        """Return the problem's title (the HTTP reason when the body had none)."""
        return str(self.problem.get("title") or f"HTTP {self.status}")

    @property
    def detail(self) -> str | None:
        """Return the problem's detail, if any."""
        detail = self.problem.get("detail")
        return None if detail is None else str(detail)

    @property
    def field_errors(self) -> list[tuple[str, str]]:
        """Return (field, message) for each invalid field the problem lists."""
        found: list[tuple[str, str]] = []
        for entry in self.problem.get("errors") or []:
            if isinstance(entry, dict):
                field = entry.get("field") or ".".join(str(p) for p in entry.get("loc", [])[1:])
                found.append((str(field or "?"), str(entry.get("message", ""))))
        return found

    def one_line(self) -> str:
        """Return the problem as one readable line, invalid fields included."""
        text = f"{self.status} {self.title}"
        if self.detail:
            text += f": {self.detail}"
        fields = "; ".join(f"{field}: {message}" for field, message in self.field_errors)
        if fields:
            text += f" ({fields})"
        return text


class BadRequestError(ApiError):
    """400 or 422: the request itself is wrong; `field_errors` says where."""


class UnauthorizedError(ApiError):
    """401: no token, an expired one or a wrong one."""


class ForbiddenError(ApiError):
    """403: the token's roles do not allow the call."""


class NotFoundError(ApiError):
    """404: nothing by that id in this workspace."""


class ConflictError(ApiError):
    """409: the call conflicts with the current state (e.g. a linked model)."""


class PreconditionFailedError(ApiError):
    """412: the resource changed since its ETag was read."""


class ServiceUnavailableError(ApiError):
    """503: the service (or every gateway backend) could not answer."""


_BY_STATUS: dict[int, type[ApiError]] = {
    400: BadRequestError,
    401: UnauthorizedError,
    403: ForbiddenError,
    404: NotFoundError,
    409: ConflictError,
    412: PreconditionFailedError,
    422: BadRequestError,
    503: ServiceUnavailableError,
}


def api_error(*, status: int, problem: dict[str, Any], method: str, url: str) -> ApiError:
    """Return the ApiError subclass instance matching `status`."""
    cls = _BY_STATUS.get(status, ApiError)
    return cls(status=status, problem=problem, method=method, url=url)


class StreamError(ModelyardError):
    """A stream ended with an error event (its backend failed after the first byte)."""
