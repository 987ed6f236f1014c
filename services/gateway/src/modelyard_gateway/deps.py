"""What the gateway's admin routers share: route shapes, idempotent creates, ETag answers.

Foundation: imports no feature. The session is `modelyard_common.db.SessionDep`, principals and
roles are `modelyard_common.auth`'s; each feature reads its own handles from `app.state`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar

from fastapi import APIRouter, Response, status

from modelyard_common.errors import problem_responses
from modelyard_common.http import IdempotentCreates
from modelyard_gateway.db import IdempotencyRecord

# Creates accept `Idempotency-Key`: a retry answers the first result (records per caller).
creates = IdempotentCreates(IdempotencyRecord)


class Versioned(Protocol):
    """An API view that carries its resource's ETag."""

    @property
    def etag(self) -> str: ...


V = TypeVar("V", bound=Versioned)


def with_etag(response: Response, resource: V) -> V:
    """Return `resource`, its ETag set on the response's header."""
    response.headers["ETag"] = resource.etag
    return resource


F = TypeVar("F", bound=Callable[..., Any])


@dataclass(frozen=True, slots=True)
class AdminRoutes:
    """The route shapes every admin resource shares: list, create, get, change, delete.

    Each shape fixes its method, path, status and the problems it can answer besides the
    route's own (`errors`); `item` is the resource's path, e.g. `/{group_id}`.
    """

    router: APIRouter
    item: str

    def listing(self, operation_id: str, summary: str) -> Callable[[F], F]:
        """Return the decorator of `GET ""`: one page of the workspace's resources."""
        return self.router.get(
            "",
            operation_id=operation_id,
            summary=summary,
            responses=problem_responses(401, 403, 422),
        )

    def creating(
        self, operation_id: str, summary: str, model: type[Any], *errors: int
    ) -> Callable[[F], F]:
        """Return the decorator of `POST ""`: a create answered 201 with `model`."""
        return self.router.post(
            "",
            operation_id=operation_id,
            summary=summary,
            status_code=status.HTTP_201_CREATED,
            response_model=model,
            responses=problem_responses(401, 403, *errors),
        )

    def reading(self, operation_id: str, summary: str, model: type[Any]) -> Callable[[F], F]:
        """Return the decorator of `GET item`: one resource as `model`."""
        return self.router.get(
            self.item,
            operation_id=operation_id,
            summary=summary,
            response_model=model,
            responses=problem_responses(401, 403, 404),
        )

    def changing(
        self, operation_id: str, summary: str, model: type[Any], *errors: int
    ) -> Callable[[F], F]:
        """Return the decorator of `PATCH item`: the changed resource as `model`."""
        return self.router.patch(
            self.item,
            operation_id=operation_id,
            summary=summary,
            response_model=model,
            responses=problem_responses(401, 403, 404, *errors),
        )

    def deleting(self, operation_id: str, summary: str, *errors: int) -> Callable[[F], F]:
        """Return the decorator of `DELETE item`, answered 204."""
        return self.router.delete(
            self.item,
            operation_id=operation_id,
            summary=summary,
            status_code=status.HTTP_204_NO_CONTENT,
            response_class=Response,
            responses=problem_responses(401, 403, 404, *errors),
        )
