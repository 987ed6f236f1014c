"""The FastAPI app every service starts from: problems, CORS, request ids, health, metrics."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Sequence
from datetime import timedelta
from typing import Any

from fastapi import APIRouter, FastAPI, Request, Response
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from pydantic import BaseModel
from sqlalchemy import delete, text
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker
from sqlalchemy.orm import InstrumentedAttribute

from modelyard_common.db import make_engine, make_sessionmaker, utcnow
from modelyard_common.errors import install_problem_handlers
from modelyard_common.messaging import Broker
from modelyard_common.observability import RequestContextMiddleware
from modelyard_common.settings import ServiceSettings

log = logging.getLogger("modelyard.web")

ReadinessCheck = Callable[[], Awaitable[None]]


class Health(BaseModel):
    status: str
    checks: dict[str, str] = {}


def health_router(checks: Callable[[Request], dict[str, ReadinessCheck]]) -> APIRouter:
    """Return `/healthz`, `/readyz` and `/metrics`."""
    router = APIRouter(tags=["operations"])

    @router.get("/healthz", operation_id="healthz", summary="The process is alive")
    async def healthz() -> Health:
        return Health(status="ok")

    @router.get(
        "/readyz",
        operation_id="readyz",
        summary="Dependencies (database, broker) are reachable",
        # Declared, though the handler answers a JSONResponse: typed clients then see `Health`.
        response_model=Health,
        responses={503: {"model": Health, "description": "A dependency is unreachable"}},
    )
    async def readyz(request: Request) -> Any:
        results: dict[str, str] = {}
        ready = True
        for name, check in checks(request).items():
            try:
                await asyncio.wait_for(check(), timeout=2.0)
                results[name] = "ok"
            except Exception as exc:
                ready = False
                results[name] = f"unavailable: {type(exc).__name__}"
        body = Health(status="ok" if ready else "unavailable", checks=results)
        return JSONResponse(body.model_dump(), status_code=200 if ready else 503)

    @router.get(
        "/metrics",
        operation_id="metrics",
        summary="Prometheus metrics",
        response_class=Response,
        responses={200: {"content": {"text/plain": {"schema": {"type": "string"}}}}},
    )
    async def metrics() -> Response:
        return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)

    return router


def create_app(
    *,
    title: str,
    description: str,
    version: str,
    settings: ServiceSettings,
    routers: Sequence[APIRouter],
    lifespan: Any = None,
    readiness: Callable[[Request], dict[str, ReadinessCheck]] | None = None,
    openapi_tags: list[dict[str, Any]] | None = None,
) -> FastAPI:
    """Return a service app with the shared conventions installed."""
    app = FastAPI(
        title=title,
        description=description,
        version=version,
        lifespan=lifespan,
        openapi_tags=openapi_tags,
    )
    app.state.settings = settings
    install_problem_handlers(app)
    if settings.cors_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=settings.cors_origins,
            allow_methods=["*"],
            allow_headers=["*"],
            expose_headers=["ETag", "Location", "x-request-id"],
        )
    app.add_middleware(RequestContextMiddleware, service=settings.service_name)
    app.include_router(health_router(readiness or default_readiness))
    for router in routers:
        app.include_router(router)
    return app


def default_readiness(request: Request) -> dict[str, ReadinessCheck]:
    """Return the checks of a service with a database and a broker in `app.state`."""
    checks: dict[str, ReadinessCheck] = {}
    engine: AsyncEngine | None = getattr(request.app.state, "engine", None)
    broker: Broker | None = getattr(request.app.state, "broker", None)
    if engine is not None:

        async def database() -> None:
            async with engine.connect() as conn:
                await conn.execute(text("SELECT 1"))

        checks["database"] = database
    if broker is not None:

        async def amqp() -> None:
            if not broker.is_connected:
                raise ConnectionError("broker not connected")

        checks["broker"] = amqp
    return checks


class ServiceRuntime:
    """The process-wide resources of a service: engine, sessions, broker (connected lazily)."""

    def __init__(self, settings: ServiceSettings) -> None:
        self.settings = settings
        self.engine: AsyncEngine = make_engine(
            settings.database_url, pool_size=settings.db_pool_size
        )
        self.sessionmaker: async_sessionmaker[AsyncSession] = make_sessionmaker(self.engine)
        self.broker = Broker(settings.amqp_url, prefetch=settings.consumer_prefetch)
        self._on_broker_ready: list[Callable[[Broker], Awaitable[None]]] = []
        self._connect_task: asyncio.Task[None] | None = None
        self._housekeeping_task: asyncio.Task[None] | None = None
        self._retained: list[tuple[InstrumentedAttribute[Any], timedelta]] = []
        self.background: list[asyncio.Task[Any]] = []

    def retain(self, column: InstrumentedAttribute[Any], retention: timedelta) -> None:
        """Delete rows whose timestamp `column` is older than `retention`, once an hour.

        For bookkeeping tables that only matter for a while (processed event ids, idempotency
        keys), so they do not grow forever.
        """
        self._retained.append((column, retention))

    async def purge_expired(self) -> int:
        """Delete what the retention rules allow now; return how many rows went."""
        removed = 0
        async with self.sessionmaker() as session, session.begin():
            for column, retention in self._retained:
                result = await session.execute(
                    delete(column.class_).where(column < utcnow() - retention)
                )
                removed += int(getattr(result, "rowcount", 0) or 0)
        return removed

    async def _housekeeping_forever(self) -> None:
        while True:
            await asyncio.sleep(self.settings.housekeeping_interval_s)
            try:
                removed = await self.purge_expired()
                if removed:
                    log.info("housekeeping removed %d expired rows", removed)
            except Exception as exc:  # the next round tries again
                log.warning("housekeeping failed: %s", exc)

    def start_housekeeping(self) -> None:
        """Start the hourly purge of expired bookkeeping rows (idempotent)."""
        if self._retained and self._housekeeping_task is None:
            self._housekeeping_task = asyncio.create_task(
                self._housekeeping_forever(), name="housekeeping"
            )

    def on_broker_ready(self, callback: Callable[[Broker], Awaitable[None]]) -> None:
        """Run `callback` once the broker is first reachable (start consumers there)."""
        self._on_broker_ready.append(callback)

    def bind(self, app: FastAPI) -> None:
        """Expose the runtime's resources on `app.state`."""
        app.state.runtime = self
        app.state.engine = self.engine
        app.state.sessionmaker = self.sessionmaker
        app.state.broker = self.broker

    async def _connect_forever(self) -> None:
        delay = 0.5
        while True:
            try:
                await self.broker.connect()
                break
            except Exception as exc:
                log.warning("broker unreachable (%s); retrying in %.1fs", exc, delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 15.0)
        for callback in self._on_broker_ready:
            await callback(self.broker)

    async def start(self) -> None:
        """Connect to the broker in the background: the API serves even while it is down."""
        self._connect_task = asyncio.create_task(self._connect_forever(), name="broker-connect")
        self.start_housekeeping()

    async def wait_broker(self, timeout: float = 30.0) -> None:
        """Wait until the broker is connected and consumers are started."""
        if self._connect_task is not None:
            await asyncio.wait_for(asyncio.shield(self._connect_task), timeout)

    async def stop(self) -> None:
        """Stop background work, close the broker and the engine."""
        tasks = [
            t
            for t in [self._connect_task, self._housekeeping_task, *self.background]
            if t is not None
        ]
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        await self.broker.close()
        await self.engine.dispose()
