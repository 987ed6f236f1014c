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
from typing import Any, Protocol, TypeVar

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


@dataclass(frozen=True, slots=True)
class Routes:
    """The route shapes of one router: `item` is the path of one resource, e.g. `/{grant_id}`.

    Item shapes take an optional `suffix` below the item (`/history`, `/token`); collection
    shapes an optional `path` (default: the router's prefix itself).
    """

    router: APIRouter
    item: str = ""

    def listing(
        self,
        operation_id: str,
        summary: str,
        *,
        problems: Sequence[int],
        path: str = "",
        **options: Any,
    ) -> Callable[[F], F]:
        """Return the decorator of `GET path`: one page of resources."""
        return self._route("GET", path, operation_id, summary, problems, options)

    def creating(
        self,
        operation_id: str,
        summary: str,
        *,
        problems: Sequence[int],
        path: str = "",
        **options: Any,
    ) -> Callable[[F], F]:
        """Return the decorator of `POST path`, answered 201."""
        options = {"status_code": status.HTTP_201_CREATED, **options}
        return self._route("POST", path, operation_id, summary, problems, options)

    def reading(
        self,
        operation_id: str,
        summary: str,
        *,
        problems: Sequence[int],
        suffix: str = "",
        **options: Any,
    ) -> Callable[[F], F]:
        """Return the decorator of `GET item` (or of a read below it)."""
        return self._route("GET", self.item + suffix, operation_id, summary, problems, options)

    def changing(
        self, operation_id: str, summary: str, *, problems: Sequence[int], **options: Any
    ) -> Callable[[F], F]:
        """Return the decorator of `PATCH item`."""
        return self._route("PATCH", self.item, operation_id, summary, problems, options)

    def deleting(
        self, operation_id: str, summary: str, *, problems: Sequence[int], **options: Any
    ) -> Callable[[F], F]:
        """Return the decorator of `DELETE item`, answered 204."""
        options = {"status_code": status.HTTP_204_NO_CONTENT, **options}
        return self._route("DELETE", self.item, operation_id, summary, problems, options)

    def acting(
        self,
        operation_id: str,
        summary: str,
        *,
        problems: Sequence[int],
        suffix: str = "",
        **options: Any,
    ) -> Callable[[F], F]:
        """Return the decorator of `POST item+suffix`: an action on one resource."""
        return self._route("POST", self.item + suffix, operation_id, summary, problems, options)

    def _route(
        self,
        method: str,
        path: str,
        operation_id: str,
        summary: str,
        problems: Sequence[int],
        options: dict[str, Any],
    ) -> Callable[[F], F]:
        fastapi_options = dict(options)
        # A route's own responses (a 206, a download's media type) come with its problems.
        responses = {**fastapi_options.pop("responses", {}), **problem_responses(*problems)}

        def declare(endpoint: F) -> F:
            self.router.add_api_route(
                path,
                endpoint,
                methods=[method],
                operation_id=operation_id,
                summary=summary,
                responses=responses,
                **fastapi_options,
            )
            return endpoint

        return declare
