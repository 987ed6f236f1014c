"""The routes every inventory kind has, written once; each kind's router adds its own around them.

Paths, operation ids and summaries follow the kind's noun: `GET /v1/models` is `list_models`,
`GET /v1/models/{model_id}` is `get_model`, and so on for systems.
"""

# No `from __future__ import annotations` here: FastAPI reads each parameter's type when the
# route is made, and a kind's body classes are known only then (they come in `InventoryRoutes`).
# mypy cannot check a type held in a variable: those few lines carry a `type: ignore`.

import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Annotated, Any, Generic, Protocol, cast

from fastapi import APIRouter, Depends, Path, Query, Response, status
from fastapi.responses import JSONResponse
from pydantic import BaseModel

from modelyard_common.auth import Admin, Editor, Viewer
from modelyard_common.db import SessionDep
from modelyard_common.errors import problem_responses
from modelyard_common.http import IdempotencyKey, IfMatch
from modelyard_common.pagination import Page, PageParams, page_params
from modelyard_registry.deps import creates
from modelyard_registry.history.router import HistoryPage, history_page
from modelyard_registry.history.schemas import HistoryEntryRead
from modelyard_registry.history.service import list_history
from modelyard_registry.inventory.repository import Item
from modelyard_registry.inventory.service import Create, Filters, Inventory, Read

# The query parameters every inventory list has (each kind's filter dependency declares them).
SearchText = Annotated[str | None, Query(max_length=200, description="Full-text search.")]
AnyTag = Annotated[list[str] | None, Query(description="Any of these tags.")]
ArchivedOnly = Annotated[
    bool | None, Query(description="false (default): active only; true: archived only.")
]
SomeIds = Annotated[
    list[uuid.UUID] | None, Query(max_length=200, description="Fetch these ids in one call.")
]


def shared_filters(
    q: str | None, tag: list[str] | None, archived: bool | None, ids: list[uuid.UUID] | None
) -> dict[str, Any]:
    """Return the shared filters' fields: tags lower-cased; `ids` finds rows archived or not."""
    return {
        "q": q,
        "tags": [t.lower() for t in tag or []],
        "archived": None if ids else archived,
        "ids": ids or [],
    }


class _Tagged(Protocol):
    etag: str


def _send_etag(response: Response, read: BaseModel) -> None:
    # Every inventory view carries the ETag of its revision.
    response.headers["ETag"] = cast(_Tagged, read).etag


@dataclass(frozen=True)
class InventoryRoutes(Generic[Item, Read, Filters, Create]):
    """What a kind's shared routes need: its use cases, names, schemas and filters."""

    inventory: Inventory[Item, Read, Filters, Create]
    noun: str  # "model": paths /models/{model_id}, operation ids create_model, ...
    title: str  # "AI model", in summaries
    read_schema: type[Read]
    create_schema: type[Create]
    update_schema: type[BaseModel]
    filters: Callable[..., Filters]  # the list's query parameters (a dependency)
    delete_summary: str
    delete_errors: Sequence[int]
    history_summary: str

    def add_item_routes(self, router: APIRouter) -> None:
        """Add list, register, get, change, delete, archive and unarchive to `router`."""
        inventory, noun, title = self.inventory, self.noun, self.title
        CreateBody, UpdateBody = self.create_schema, self.update_schema
        ItemId = Annotated[uuid.UUID, Path(alias=f"{noun}_id")]
        ItemPage = Annotated[PageParams, Depends(page_params("name", list(inventory.sort_columns)))]
        ItemFilters = Annotated[Any, Depends(self.filters)]

        @router.get(
            "",
            operation_id=f"list_{noun}s",
            summary=f"List {title}s (filter, search, sort, paginate)",
            response_model=Page[self.read_schema],  # type: ignore[name-defined]
            responses=problem_responses(401, 403, 422),
        )
        async def list_items(
            session: SessionDep, principal: Viewer, filters: ItemFilters, params: ItemPage
        ) -> Any:
            items, cursor = await inventory.page(
                session, principal=principal, filters=filters, params=params
            )
            return Page(items=items, next_cursor=cursor)

        @router.post(
            "",
            operation_id=f"create_{noun}",
            summary=f"Register an {title}",
            status_code=status.HTTP_201_CREATED,
            response_model=self.read_schema,
            responses=problem_responses(401, 403, 409, 422),
        )
        async def create_item(
            session: SessionDep,
            principal: Editor,
            body: CreateBody,  # type: ignore[valid-type]
            idempotency_key: IdempotencyKey = None,
        ) -> JSONResponse:
            return await creates.respond(
                session,
                principal=principal,
                operation=f"create_{noun}",
                key=idempotency_key,
                body=body,
                create=lambda: inventory.create(session, principal=principal, body=body),
                location=f"/v1/{noun}s/{{id}}",
            )

        @router.get(
            "/{" + noun + "_id}",
            operation_id=f"get_{noun}",
            summary=f"Get one {title}",
            response_model=self.read_schema,
            responses=problem_responses(401, 403, 404),
        )
        async def get_item(
            session: SessionDep, principal: Viewer, item_id: ItemId, response: Response
        ) -> Any:
            read = inventory.to_read(
                await inventory.get(session, principal=principal, item_id=item_id)
            )
            _send_etag(response, read)
            return read

        @router.patch(
            "/{" + noun + "_id}",
            operation_id=f"update_{noun}",
            summary=f"Change an {title} (send If-Match with its ETag)",
            response_model=self.read_schema,
            responses=problem_responses(401, 403, 404, 409, 412, 422, 428),
        )
        async def update_item(
            session: SessionDep,
            principal: Editor,
            item_id: ItemId,
            body: UpdateBody,  # type: ignore[valid-type]
            response: Response,
            if_match: IfMatch = None,
        ) -> Any:
            read = await inventory.update(
                session, principal=principal, item_id=item_id, body=body, if_match=if_match
            )
            _send_etag(response, read)
            return read

        @router.delete(
            "/{" + noun + "_id}",
            operation_id=f"delete_{noun}",
            summary=self.delete_summary,
            status_code=status.HTTP_204_NO_CONTENT,
            responses=problem_responses(401, 403, *self.delete_errors),
        )
        async def delete_item(session: SessionDep, principal: Admin, item_id: ItemId) -> None:
            await inventory.delete(session, principal=principal, item_id=item_id)

        def archiving(archived: bool) -> Callable[..., Awaitable[Any]]:
            async def set_archived(session: SessionDep, principal: Editor, item_id: ItemId) -> Any:
                return await inventory.set_archived(
                    session, principal=principal, item_id=item_id, archived=archived
                )

            return set_archived

        for action, archived, summary in (
            ("archive", True, f"Archive (soft-delete) an {title}"),
            ("unarchive", False, f"Restore an archived {title}"),
        ):
            router.post(
                "/{" + noun + "_id}/" + action,
                operation_id=f"{action}_{noun}",
                summary=summary,
                response_model=self.read_schema,
                responses=problem_responses(401, 403, 404),
            )(archiving(archived))

    def add_history_route(self, router: APIRouter) -> None:
        """Add the list of every change to one row (its history) to `router`."""
        inventory, noun = self.inventory, self.noun

        @router.get(
            "/{" + noun + "_id}/history",
            operation_id=f"list_{noun}_history",
            summary=self.history_summary,
            responses=problem_responses(401, 403, 404, 422),
        )
        async def list_item_history(
            session: SessionDep,
            principal: Viewer,
            item_id: Annotated[uuid.UUID, Path(alias=f"{noun}_id")],
            params: HistoryPage,
        ) -> Page[HistoryEntryRead]:
            rows, cursor = await list_history(
                session, workspace=principal.workspace, resource_id=item_id, params=params
            )
            if not rows and params.cursor is None:
                await inventory.get(session, principal=principal, item_id=item_id)
            return history_page(rows, cursor)
