"""Request dependencies of the agent's HTTP apps: the device's parts, read from `app.state`."""

from __future__ import annotations

from typing import Annotated

import httpx
from fastapi import Depends, Request

from modelyard_agent.routes import RouteTable
from modelyard_agent.store import DesiredStateStore


def get_store(request: Request) -> DesiredStateStore:
    """Return the device's desired-state store."""
    store: DesiredStateStore = request.app.state.store
    return store


def get_routes(request: Request) -> RouteTable:
    """Return the table of which container serves which model."""
    routes: RouteTable = request.app.state.routes
    return routes


def get_proxy_client(request: Request) -> httpx.AsyncClient:
    """Return the HTTP client that calls model containers (its own pool, long timeouts)."""
    client: httpx.AsyncClient = request.app.state.proxy_http
    return client


StoreDep = Annotated[DesiredStateStore, Depends(get_store)]
RoutesDep = Annotated[RouteTable, Depends(get_routes)]
ProxyClientDep = Annotated[httpx.AsyncClient, Depends(get_proxy_client)]
