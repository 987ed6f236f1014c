"""The FastAPI app every service starts from: problems, CORS, request ids, health, metrics."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import hmac
import inspect
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from datetime import timedelta
from typing import Any

import anyio
import anyio.lowlevel
import asyncpg
from fastapi import APIRouter, Depends, FastAPI, Request, Response
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import JSONResponse
from fastapi_offline import FastAPIOffline
from prometheus_client import CONTENT_TYPE_LATEST, Counter, generate_latest, start_http_server
from pydantic import BaseModel
from sqlalchemy import delete, text
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker
from sqlalchemy.orm import InstrumentedAttribute

from modelyard_common.db import (
    make_engine,
    make_read_sessionmaker,
    make_sessionmaker,
    utcnow,
    warm_pool,
)
from modelyard_common.errors import (
    ForbiddenError,
    ProblemBodyMiddleware,
    UnauthorizedError,
    install_problem_handlers,
    problem_responses,
)
from modelyard_common.inputs import RequestGuardMiddleware
from modelyard_common.messaging import Broker
from modelyard_common.observability import RequestContextMiddleware
from modelyard_common.openapi import install_contract_openapi
from modelyard_common.outbox import asyncpg_dsn
from modelyard_common.settings import ProcessSettings, ServiceSettings

log = logging.getLogger("modelyard.web")

ReadinessCheck = Callable[[], Awaitable[None]]
HousekeepingJob = Callable[[], Awaitable[int]]

HOUSEKEEPING_ROUNDS = Counter(
    "modelyard_housekeeping_rounds_total",
    "Housekeeping rounds this replica ran (one replica of a service runs them at a time)",
    ["service"],
)


# Where /docs and /redoc load Swagger UI's and ReDoc's scripts, styles and favicon from.
DOCS_ASSETS_URL = "/docs/assets"


class Health(BaseModel):
    status: str
    checks: dict[str, str] = {}


def metrics_guard(settings: ProcessSettings) -> Callable[[Request], Awaitable[None]]:
    """Return the check in front of `/metrics` on the service port.

    With MODELYARD_METRICS_TOKEN set, `/metrics` needs `Authorization: Bearer <token>`.
    Without it, `/metrics` is open only in dev; in prod it is refused with a problem saying how
    to turn it on (the token, or MODELYARD_METRICS_PORT for a separate listener).
    """
    expected = settings.metrics_token

    async def guard(request: Request) -> None:
        if expected is None:
            if settings.env == "dev":
                return
            raise ForbiddenError(
                "Metrics are not served on this port in prod: set MODELYARD_METRICS_TOKEN "
                "(then send it as a bearer token) or MODELYARD_METRICS_PORT."
            )
        presented = request.headers.get("authorization", "")
        scheme, _, token = presented.partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(
            token.strip().encode(), expected.encode()
        ):
            raise UnauthorizedError("The metrics token is missing or wrong.")

    return guard


def health_router(
    checks: Callable[[Request], dict[str, ReadinessCheck]],
    settings: ProcessSettings | None = None,
) -> APIRouter:
    """Return `/healthz`, `/readyz` (always open) and `/metrics` (see `metrics_guard`).

    With MODELYARD_METRICS_PORT set, `/metrics` is left out here: it is served on that port.
    """
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

    if settings is not None and settings.metrics_port is not None:
        return router

    @router.get(
        "/metrics",
        operation_id="metrics",
        summary="Prometheus metrics (bearer MODELYARD_METRICS_TOKEN when configured)",
        response_class=Response,
        responses={
            200: {"content": {"text/plain": {"schema": {"type": "string"}}}},
            **problem_responses(401, 403),
        },
        dependencies=[Depends(metrics_guard(settings or ServiceSettings(env="dev")))],
    )
    async def metrics() -> Response:
        return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)

    return router


def with_metrics_listener(settings: ProcessSettings, lifespan: Any) -> Any:
    """Return `lifespan` wrapped so that MODELYARD_METRICS_PORT serves /metrics meanwhile."""
    if settings.metrics_port is None:
        return lifespan
    port = settings.metrics_port

    @contextlib.asynccontextmanager
    async def lifespan_with_metrics(app: FastAPI) -> AsyncIterator[None]:
        server, thread = start_http_server(port, addr=settings.metrics_host)
        log.info("metrics served on %s:%d", settings.metrics_host, port)
        try:
            if lifespan is None:
                yield
            else:
                async with lifespan(app):
                    yield
        finally:
            server.shutdown()
            server.server_close()
            thread.join(timeout=5)

    return lifespan_with_metrics


def with_frozen_heap(lifespan: Any) -> Any:
    """Return `lifespan` followed, once the service has started, by a freeze of the heap.

    What a service loads to start (modules, routes, schemas, compiled statements, pools) lives
    as long as the process. Left to the cyclic garbage collector, every full collection walks
    it again: the first seconds under load, when young objects pile up fastest, paid for it
    (a freshly started registry ran its first second at about two thirds of its speed). Once
    started, garbage is collected and the rest is frozen (`gc.freeze`): collections only walk
    what requests allocate, and only once a request's worth of objects many times over has
    piled up (`YOUNG_GC_THRESHOLD`).
    """

    @contextlib.asynccontextmanager
    async def lifespan_then_freeze(app: FastAPI) -> AsyncIterator[None]:
        if lifespan is None:
            _freeze_heap()
            yield
            return
        async with lifespan(app):
            _freeze_heap()
            yield

    return lifespan_then_freeze


# FastAPI 0.16x instruments itself with OpenTelemetry when a provider is configured; older
# releases have no such argument.
_NO_FASTAPI_TELEMETRY: dict[str, Any] = (
    {"telemetry": {"tracing": False, "metrics": False, "logs": False}}
    if "telemetry" in inspect.signature(FastAPI.__init__).parameters
    else {}
)


# The young generation's threshold once the heap is frozen (CPython's default is 700). A request
# in flight holds a few hundred tracked objects; sixteen of them at once passed 700 again and
# again, and every such collection walked the live objects of every request in flight only to
# find them alive (a registry create spent about a tenth of its CPU there). Requests leave
# little cyclic garbage behind: at 10,000 a young collection runs every few thousand requests.
YOUNG_GC_THRESHOLD = 10_000


def _freeze_heap() -> None:
    gc.collect()
    gc.freeze()
    _, older, oldest = gc.get_threshold()
    gc.set_threshold(YOUNG_GC_THRESHOLD, older, oldest)


def create_app(
    *,
    title: str,
    description: str,
    version: str,
    settings: ProcessSettings,
    routers: Sequence[APIRouter],
    lifespan: Any = None,
    readiness: Callable[[Request], dict[str, ReadinessCheck]] | None = None,
    openapi_tags: list[dict[str, Any]] | None = None,
    raw_bodies: Mapping[tuple[str, str], int | None] | None = None,
    expose_headers: Sequence[str] = (),
    own_telemetry: bool = False,
) -> FastAPI:
    """Return a service app with the shared conventions installed.

    Request bodies are capped at `settings.max_request_bytes` and checked for NUL; `raw_bodies`
    names (method, path template) the routes whose body is not an API document, each with its
    own limit (None: the route enforces one). `/docs` (Swagger UI) and `/redoc` load their
    scripts and styles from the service itself (DOCS_ASSETS_URL, the fastapi-offline package's
    copies), never from a CDN: they work on a network without the internet. A browser on a
    CORS origin may read ETag, Location and x-request-id, and the service's `expose_headers`.
    A service with `own_telemetry` (the gateway: its own GenAI spans and metrics) turns
    FastAPI's OpenTelemetry instrumentation off, which otherwise asks on every request whether
    a tracer, meter or logger provider was configured.
    """
    app = FastAPIOffline(
        static_url=DOCS_ASSETS_URL,
        title=title,
        description=description,
        version=version,
        lifespan=with_metrics_listener(settings, with_frozen_heap(lifespan)),
        openapi_tags=openapi_tags,
        **(_NO_FASTAPI_TELEMETRY if own_telemetry else {}),
    )
    app.state.settings = settings
    install_problem_handlers(app)
    install_contract_openapi(app)
    app.add_middleware(ProblemBodyMiddleware)
    app.add_middleware(
        RequestGuardMiddleware,
        max_request_bytes=settings.max_request_bytes,
        raw_bodies=raw_bodies,
    )
    if settings.cors_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=settings.cors_origins,
            allow_methods=["*"],
            allow_headers=["*"],
            expose_headers=["ETag", "Location", "x-request-id", *expose_headers],
        )
    app.add_middleware(RequestContextMiddleware, service=settings.service_name)
    app.include_router(health_router(readiness or default_readiness, settings))
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


def warm_routes(app: FastAPI) -> int:
    """Build what routing builds on a first request (each route's parameter models); return how
    many top-level routes were walked.

    FastAPI prepares a router's routes when a request first walks it: hundreds of milliseconds
    for a service's API, paid by whichever client comes first. Matching a made-up request
    against every route does it before the service listens; nothing runs.
    """
    scope: dict[str, Any] = {
        "type": "http",
        "method": "GET",
        "path": "/",
        "root_path": "",
        "headers": [],
        "query_string": b"",
        "app": app,
    }
    for route in app.router.routes:
        route.matches(dict(scope))
    return len(app.router.routes)


class ServiceRuntime:
    """The process-wide resources of a service: engine, sessions, broker (connected lazily)."""

    def __init__(self, settings: ServiceSettings) -> None:
        self.settings = settings
        self.engine: AsyncEngine = make_engine(
            settings.database_url, pool_size=settings.db_pool_size
        )
        self.sessionmaker: async_sessionmaker[AsyncSession] = make_sessionmaker(self.engine)
        self.read_sessionmaker = make_read_sessionmaker(self.engine)
        self.broker = Broker(settings.amqp_url, prefetch=settings.consumer_prefetch)
        self._on_broker_ready: list[Callable[[Broker], Awaitable[None]]] = []
        self._connect_task: asyncio.Task[None] | None = None
        self._housekeeping_task: asyncio.Task[None] | None = None
        self._retained: list[tuple[InstrumentedAttribute[Any], timedelta]] = []
        self._jobs: list[tuple[str, HousekeepingJob]] = []
        self._leader: asyncpg.Connection | None = None
        self.background: list[asyncio.Task[Any]] = []
        self.app: FastAPI | None = None

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

    def housekeep(self, name: str, job: HousekeepingJob) -> None:
        """Run `job` in every housekeeping round; it returns how many leftovers it removed."""
        self._jobs.append((name, job))

    async def lead_housekeeping(self) -> bool:
        """Return whether this replica is the one that runs housekeeping now.

        The leader holds a session advisory lock on a connection of its own; when it dies, its
        connection goes and the lock with it, and the next replica to try takes over.
        """
        if self._leader is not None and not self._leader.is_closed():
            try:
                await self._leader.fetchval("SELECT 1", timeout=5)
                return True
            except (OSError, asyncpg.PostgresError, TimeoutError):
                await self._drop_leadership()
        connection = await asyncpg.connect(asyncpg_dsn(self.settings.database_url), timeout=10)
        try:
            won = await connection.fetchval(
                "SELECT pg_try_advisory_lock(hashtextextended($1, 0))",
                f"modelyard.housekeeping.{self.settings.service_name}",
            )
        except BaseException:
            await connection.close()
            raise
        if not won:
            await connection.close()
            return False
        self._leader = connection
        return True

    async def _drop_leadership(self) -> None:
        leader, self._leader = self._leader, None
        if leader is not None and not leader.is_closed():
            with contextlib.suppress(Exception):
                await leader.close(timeout=2)

    async def housekeeping_round(self) -> int | None:
        """Run one round if this replica leads; return what went (None: another replica leads)."""
        if not await self.lead_housekeeping():
            return None
        HOUSEKEEPING_ROUNDS.labels(self.settings.service_name).inc()
        removed = await self.purge_expired() if self._retained else 0
        for name, job in self._jobs:
            try:
                removed += await job()
            except Exception as exc:  # one failing job does not stop the others
                log.warning("housekeeping job %s failed: %s", name, exc)
        return removed

    async def _housekeeping_forever(self) -> None:
        while True:
            await asyncio.sleep(self.settings.housekeeping_interval_s)
            try:
                removed = await self.housekeeping_round()
                if removed:
                    log.info("housekeeping removed %d expired rows and leftovers", removed)
            except Exception as exc:  # the next round tries again
                log.warning("housekeeping failed: %s", exc)

    def start_housekeeping(self) -> None:
        """Start the hourly purge of expired rows and leftovers (idempotent)."""
        if (self._retained or self._jobs) and self._housekeeping_task is None:
            self._housekeeping_task = asyncio.create_task(
                self._housekeeping_forever(), name="housekeeping"
            )

    def on_broker_ready(self, callback: Callable[[Broker], Awaitable[None]]) -> None:
        """Run `callback` once the broker is first reachable (start consumers there)."""
        self._on_broker_ready.append(callback)

    def bind(self, app: FastAPI) -> None:
        """Expose the runtime's resources on `app.state`."""
        self.app = app
        app.state.runtime = self
        app.state.engine = self.engine
        app.state.sessionmaker = self.sessionmaker
        app.state.read_sessionmaker = self.read_sessionmaker
        app.state.broker = self.broker

    async def _connect_forever(self) -> None:
        await self.broker.connect_forever(log)
        for callback in self._on_broker_ready:
            await callback(self.broker)

    async def start(self) -> None:
        """Connect to the broker in the background: the API serves even while it is down."""
        self._connect_task = asyncio.create_task(self._connect_forever(), name="broker-connect")
        self.start_housekeeping()

    async def warm(
        self, statements: Callable[[AsyncSession], Awaitable[None]] | None = None
    ) -> None:
        """Prepare the routes (`warm_routes`), open the database pool and run the hot
        `statements` on each connection (`warm_pool`).

        Called before the service listens, so its first requests find connections open and
        statements prepared. A database that is not reachable yet is not an error here: the
        service starts cold and connects on demand, as it always could.
        """
        started = asyncio.get_running_loop().time()
        if self.app is not None:
            warm_routes(self.app)
        await anyio.lowlevel.checkpoint()  # anyio loads its asyncio backend on first use
        try:
            warmed = await asyncio.wait_for(
                warm_pool(self.engine, self.sessionmaker, statements), timeout=30
            )
        except Exception as exc:
            log.warning("database pool not warmed at start (%s); connecting on demand", exc)
            return
        elapsed = asyncio.get_running_loop().time() - started
        log.info("database pool warmed: %d connections in %.2fs", warmed, elapsed)

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
        await self._drop_leadership()
        await self.broker.close()
        await self.engine.dispose()
