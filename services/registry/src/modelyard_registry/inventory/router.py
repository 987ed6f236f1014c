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
from typing import Annotated, Any, Generic, cast

from fastapi import APIRouter, Depends, Path, Query, Response
from pydantic import BaseModel

from modelyard_common.auth import Admin, Editor, Viewer
from modelyard_common.db import ReadSessionDep, SessionDep
from modelyard_common.history import HistoryEntryRead, HistoryPaging, history_page
from modelyard_common.http import IfMatch
from modelyard_common.pagination import Page, PageParams, page_params
from modelyard_common.routes import Routes, Tagged, with_etag
from modelyard_registry.deps import AUTH_PROBLEMS, creates
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


@dataclass(frozen=True)
class InventoryRoutes(Generic[Item, Read, Filters, Create]):
    """What a kind's shared routes need: its use cases, names, schemas and filters."""

    inventory: Inventory[Item, Read, Filters, Create]
    title: str  # "AI model", in summaries
    create_schema: type[Create]
    update_schema: type[BaseModel]
    filters: Callable[..., Awaitable[Filters]]  # the list's query parameters (a dependency)
    delete_summary: str
    delete_errors: Sequence[int]
    history_summary: str

    @property
    def noun(self) -> str:
        """The kind's resource, "model": paths /models/{model_id}, operation ids create_model..."""
        return self.inventory.resource

    def routes(self, router: APIRouter) -> Routes:
        """Return the route shapes of `router`, whose item is one row: `/{model_id}`, ..."""
        return Routes(router, item="/{" + self.noun + "_id}")

    def add_item_routes(self, router: APIRouter) -> None:
        """Add list, register, get, change, delete, archive and unarchive to `router`."""
        inventory, noun, title = self.inventory, self.noun, self.title
        CreateBody, UpdateBody = self.create_schema, self.update_schema
        ItemId = Annotated[uuid.UUID, Path(alias=f"{noun}_id")]
        routes = self.routes(router)
        ItemPage = Annotated[PageParams, Depends(page_params("name", list(inventory.sort_columns)))]
        ItemFilters = Annotated[Any, Depends(self.filters)]

        @routes.listing(
            f"list_{noun}s",
            f"List {title}s (filter, search, sort, paginate)",
            problems=(*AUTH_PROBLEMS, 422),
            response_model=Page[inventory.read],  # type: ignore[name-defined]
        )
        async def list_items(
            session: ReadSessionDep, principal: Viewer, filters: ItemFilters, params: ItemPage
        ) -> Any:
            items, cursor = await inventory.page(
                session, principal=principal, filters=filters, params=params
            )
            return Page(items=items, next_cursor=cursor).response()

        @creates.route(
            routes,
            f"create_{noun}",
            f"Register an {title}",
            problems=(*AUTH_PROBLEMS, 409, 422),
            response_model=inventory.read,
            location=f"/v1/{noun}s/{{id}}",
        )
        async def create_item(
            session: SessionDep,
            principal: Editor,
            body: CreateBody,  # type: ignore[valid-type]
        ) -> Any:
            return await inventory.create(session, principal=principal, body=body)

        @routes.reading(
            f"get_{noun}",
            f"Get one {title}",
            problems=(*AUTH_PROBLEMS, 404),
            response_model=inventory.read,
        )
        async def get_item(
            session: ReadSessionDep, principal: Viewer, item_id: ItemId, response: Response
        ) -> Any:
            row = await inventory.get(session, principal=principal, item_id=item_id)
            return with_etag(response, cast(Tagged, inventory.to_read(row)))

        @routes.changing(
            f"update_{noun}",
            f"Change an {title} (send If-Match with its ETag)",
            problems=(*AUTH_PROBLEMS, 404, 409, 412, 422, 428),
            response_model=inventory.read,
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
            return with_etag(response, cast(Tagged, read))

        @routes.deleting(
            f"delete_{noun}", self.delete_summary, problems=(*AUTH_PROBLEMS, *self.delete_errors)
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
            routes.acting(
                f"{action}_{noun}",
                summary,
                problems=(*AUTH_PROBLEMS, 404),
                subpath=f"/{action}",
                response_model=inventory.read,
            )(archiving(archived))

    def add_history_route(self, router: APIRouter) -> None:
        """Add the list of every change to one row (its history) to `router`."""
        inventory, noun = self.inventory, self.noun

        @self.routes(router).reading(
            f"list_{noun}_history",
            self.history_summary,
            problems=(*AUTH_PROBLEMS, 404, 422),
            subpath="/history",
        )
        async def list_item_history(
            session: ReadSessionDep,
            principal: Viewer,
            item_id: Annotated[uuid.UUID, Path(alias=f"{noun}_id")],
            params: HistoryPaging,
        ) -> Page[HistoryEntryRead]:
            rows, cursor = await list_history(
                session, workspace=principal.workspace, resource_id=item_id, params=params
            )
            if not rows and params.cursor is None:
                await inventory.get(session, principal=principal, item_id=item_id)
            return history_page(rows, cursor)
