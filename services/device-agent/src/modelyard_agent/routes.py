"""Which container serves each model right now, and how many calls are in flight to it.

The local API resolves a model name here on every call, so switching versions is a single
assignment; the reconciler drains the old container's in-flight calls before stopping it.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass, field
from uuid import UUID


@dataclass(slots=True)
class Route:
    """The container answering one model's calls."""

    model_name: str
    deployment_id: UUID
    version_id: UUID
    container_id: str
    host_port: int
    inflight: int = field(default=0, compare=False)

    @property
    def base_url(self) -> str:
        """Return the loopback URL of the container's published port."""
        return f"http://127.0.0.1:{self.host_port}"


class RouteTable:
    """Model name -> serving route; shared by the reconciler and the local API."""

    def __init__(self) -> None:
        self._routes: dict[str, Route] = {}
        self._retired: dict[str, Route] = {}

    def get(self, model_name: str) -> Route | None:
        """Return the route serving a model, if it is running."""
        return self._routes.get(model_name)

    def for_deployment(self, deployment_id: UUID) -> Route | None:
        """Return the route of a deployment, if it is running."""
        return next((r for r in self._routes.values() if r.deployment_id == deployment_id), None)

    def switch(self, route: Route) -> None:
        """Make `route` serve its model; the previous one keeps its in-flight calls until done."""
        previous = self._routes.get(route.model_name)
        if previous is not None and previous.container_id != route.container_id:
            self._retired[previous.container_id] = previous
        self._routes[route.model_name] = route

    def withdraw(self, deployment_id: UUID) -> None:
        """Stop routing calls to a deployment's container."""
        for name, route in list(self._routes.items()):
            if route.deployment_id == deployment_id:
                self._retired[route.container_id] = route
                del self._routes[name]

    def use(self, model_name: str) -> AbstractContextManager[Route | None]:
        """Return a block yielding the model's route (or None), counted as in flight."""
        return self._counted(self._routes.get(model_name))

    def use_deployment(self, deployment_id: UUID) -> AbstractContextManager[Route | None]:
        """Return a block yielding the deployment's route (or None), counted as in flight."""
        return self._counted(self.for_deployment(deployment_id))

    @contextmanager
    def _counted(self, route: Route | None) -> Iterator[Route | None]:
        if route is None:
            yield None
            return
        route.inflight += 1
        try:
            yield route
        finally:
            route.inflight -= 1

    async def drain(self, container_id: str, timeout_s: float) -> None:
        """Wait until no call is in flight to a container that no longer serves (or timeout)."""
        route = self._retired.pop(container_id, None)
        if route is None:
            return
        deadline = time.monotonic() + timeout_s
        # Polling is fine here: a switch happens once per update and calls are short.
        while route.inflight > 0 and time.monotonic() < deadline:  # noqa: ASYNC110
            await asyncio.sleep(0.05)
