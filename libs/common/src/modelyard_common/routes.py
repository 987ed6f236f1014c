"""Route shapes: a resource's routes declared in one line each (list, create, get, change, ...).

A shape fixes what every route of its kind shares: the HTTP method, the path (the collection
`""` or the item, e.g. `/{device_id}`), the success status and the problem responses the OpenAPI
document lists. The route itself keeps its operation id, summary, signature and body, so a reader
sees what it does where it is declared:

    devices = Routes(router, item="/{device_id}")

    @devices.reading("get_device", "Get one device", problems=(401, 404))
    async def get_device(device_id: uuid.UUID, session: SessionDep, principal: Viewer) -> Device:
        ...

Any other keyword (`description`, `response_model`, `status_code`, `tags`, ...) goes to FastAPI
as is. Small answers every router gives live here too: `with_etag`, `no_content`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partialmethod
from typing import Any, Protocol, TypeVar, cast

from fastapi import APIRouter, Response, status

from modelyard_common.errors import problem_responses

__all__ = ["Routes", "Tagged", "no_content", "with_etag"]

F = TypeVar("F", bound=Callable[..., Any])


class Tagged(Protocol):
    """A resource view carrying its ETag."""

    @property
    def etag(self) -> str: ...


V = TypeVar("V", bound=Tagged)


def with_etag(response: Response, resource: V) -> V:
    """Return `resource` after setting its `ETag` on the response (reads and updates)."""
    response.headers["ETag"] = resource.etag
    return resource


def no_content() -> Response:
    """Return the empty 204 answer of a delete."""
    return Response(status_code=status.HTTP_204_NO_CONTENT)


class Shape(Protocol):
    """A route shape: the decorator of one route, given its names and problem responses."""

    def __call__(
        self,
        operation_id: str,
        summary: str,
        *,
        problems: Sequence[int],
        subpath: str = "",
        **options: Any,
    ) -> Callable[[F], F]: ...


@dataclass(frozen=True, slots=True)
class Routes:
    """The route shapes of one router; `item` is the path of one resource, e.g. `/{grant_id}`.

    `subpath` names a route below the shape's own path: `/history` below the item, or
    `/deployments` below a router whose prefix is itself an item.
    """

    router: APIRouter
    item: str = ""

    def route(
        self,
        method: str,
        on_item: bool,
        operation_id: str,
        summary: str,
        *,
        problems: Sequence[int],
        subpath: str = "",
        **options: Any,
    ) -> Callable[[F], F]:
        """Return a decorator adding its endpoint as `method` on the collection or the item."""
        # A route's own responses (a 206, a download's media type) come with its problems.
        responses = {**options.pop("responses", {}), **problem_responses(*problems)}
        path = (self.item if on_item else "") + subpath

        def declare(endpoint: F) -> F:
            self.router.add_api_route(
                path,
                endpoint,
                methods=[method],
                operation_id=operation_id,
                summary=summary,
                responses=responses,
                **options,
            )
            return endpoint

        return declare

    # The shapes: the collection's list and create, the item's read, change, delete and actions
    # (`Shape` gives mypy the signature a `partialmethod` hides).
    listing = cast(Shape, partialmethod(route, "GET", False))
    creating = cast(Shape, partialmethod(route, "POST", False, status_code=201))
    reading = cast(Shape, partialmethod(route, "GET", True))
    changing = cast(Shape, partialmethod(route, "PATCH", True))
    deleting = cast(Shape, partialmethod(route, "DELETE", True, status_code=204))
    acting = cast(Shape, partialmethod(route, "POST", True))
