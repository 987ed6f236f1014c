"""The OpenAI-compatible API's handlers, as raw ASGI so the hot path stays lean.

`ProxyFastPath` (fastpath.py) hands them requests before the rest of the middleware stack runs;
browsers (with an `Origin` header) come through FastAPI's documented routes (router.py), which
call the same handlers. Either way, no database query runs per request.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from modelyard_common.pacing import Traffic
from modelyard_gateway import metrics
from modelyard_gateway.limits.meter import Admission, Meter, Refused
from modelyard_gateway.proxy import records
from modelyard_gateway.proxy.intake import bearer, budget, parse_request, read_body
from modelyard_gateway.proxy.schemas import ModelList, ModelObject, error_body
from modelyard_gateway.proxy.service import Answer, Exhausted, ProxyService, StreamAnswer
from modelyard_gateway.proxy.streaming import StreamRelay, first_event_model
from modelyard_gateway.proxy.wire import (
    ATTEMPTS,
    INSTANCE,
    JSON,
    MODELS_PATH,
    MODELS_PREFIX,
    POST_PATHS,
    STREAMING_PATHS,
    ClientError,
    Receive,
    Scope,
    Send,
    policy_headers,
    send_bytes,
)
from modelyard_gateway.requestlog.record import RequestRecord
from modelyard_gateway.requestlog.writer import RequestLog
from modelyard_gateway.routing.catalog import Catalog, ClientKey, GroupRoute
from modelyard_gateway.routing.health import HealthBoard
from modelyard_gateway.routing.strategies import affinity_of
from modelyard_gateway.settings import GatewaySettings
from modelyard_gateway.usage.service import UsageRecorder

if TYPE_CHECKING:  # telemetry's module is imported only when it is configured
    from modelyard_gateway.telemetry.otel import RequestTrace, Telemetry

log = logging.getLogger("modelyard.gateway.proxy")


class ProxyEndpoints:
    """The ASGI handlers of the OpenAI-compatible API (built by the app's lifespan)."""

    def __init__(
        self,
        settings: GatewaySettings,
        *,
        catalog: Catalog,
        board: HealthBoard,
        proxy: ProxyService,
        usage: UsageRecorder,
        meter: Meter,
        requests: RequestLog,
        telemetry: Telemetry | None = None,
    ) -> None:
        self.settings = settings
        self.telemetry = telemetry  # None: OpenTelemetry is off (no telemetry call at all)
        self.keep_records = settings.request_log_enabled
        self.catalog = catalog
        self.proxy = proxy
        self.usage = usage
        self.meter = meter
        self.requests = requests
        self.streams = StreamRelay(board, usage)
        self.traffic = Traffic()  # when a request last came: the event consumers' pace

    async def _client_key(self, scope: Scope) -> ClientKey:
        token = bearer(scope)
        if token is None:
            raise ClientError(
                401,
                "You didn't provide an API key (Authorization: Bearer sk-...).",
                type_="invalid_request_error",
                code="missing_api_key",
            )
        key = await self.catalog.client_key(token)
        if key is None:
            raise ClientError(
                401,
                "Incorrect API key provided.",
                type_="invalid_request_error",
                code="invalid_api_key",
            )
        if key.expires_at is not None and time.time() >= key.expires_at:
            when = datetime.fromtimestamp(key.expires_at, UTC).isoformat().replace("+00:00", "Z")
            raise ClientError(
                401,
                f"This API key expired at {when}.",
                type_="invalid_request_error",
                code="expired_api_key",
            )
        return key

    async def _admit(self, key: ClientKey) -> Admission:
        """Return the request's admission under its key's limits and its workspace's ceiling."""
        try:
            return await self.meter.admit(key, self.catalog.snapshot.ceilings.get(key.workspace))
        except Refused as refused:
            metrics.limit_refusals(key.workspace, refused.kind, refused.window.measure).inc()
            raise ClientError(
                429,
                refused.message,
                type_=refused.type,
                code=refused.code,
                headers=[(b"retry-after", str(refused.retry_after).encode())],
            ) from None

    def _group(self, key: ClientKey, name: Any) -> GroupRoute:
        group = None
        if isinstance(name, str) and key.may_use(name):
            group = self.catalog.snapshot.groups.get((key.workspace, name))
        if group is None:
            raise ClientError(
                404,
                f"The model '{name}' does not exist or you do not have access to it.",
                type_="invalid_request_error",
                code="model_not_found",
                param="model",
            )
        if group.refusal is not None:
            # The workspace's policy gate: the model this group follows may not be served.
            raise ClientError(
                403,
                f"The model '{group.name}' is not available: {group.refusal}",
                type_="permission_error",
                code="model_not_approved",
                param="model",
            )
        return group

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Answer one OpenAI-compatible request (the path decides which)."""
        try:
            path: str = scope["path"]
            if path in POST_PATHS:
                await self._post(scope, receive, send, path)
            elif path == MODELS_PATH:
                await self._list_models(scope, send)
            else:
                await self._get_model(scope, send, path[len(MODELS_PREFIX) :])
        except ClientError as exc:
            await send_bytes(send, exc.status, exc.body, exc.headers)
        except Exception:
            log.exception("unexpected error on %s %s", scope["method"], scope["path"])
            body = error_body(
                "The gateway had an unexpected error.", type_="server_error", code="internal_error"
            )
            # If the response had already started this cannot be sent; the client sees the cut.
            with contextlib.suppress(Exception):
                await send_bytes(send, 500, body, [JSON])

    async def _list_models(self, scope: Scope, send: Send) -> None:
        key = await self._client_key(scope)
        groups = self.catalog.groups_for(key)
        body = ModelList(data=[ModelObject(id=g.name, created=g.created) for g in groups])
        await send_bytes(send, 200, body.model_dump_json().encode(), [JSON])

    async def _get_model(self, scope: Scope, send: Send, name: str) -> None:
        key = await self._client_key(scope)
        group = self._group(key, name)
        body = ModelObject(id=group.name, created=group.created)
        await send_bytes(send, 200, body.model_dump_json().encode(), [JSON])

    async def _post(self, scope: Scope, receive: Receive, send: Send, path: str) -> None:
        started = time.perf_counter()
        self.traffic.seen()
        trace = None if self.telemetry is None else self.telemetry.request(scope, path)
        try:
            key = await self._client_key(scope)
        except ClientError as exc:
            if trace is not None:
                trace.refused(exc.status, exc.code)
            raise
        # The record is also what the trace reads its attributes from.
        if not self.keep_records and trace is None:
            await self._answer(scope, receive, send, path, key, started)
            return
        record = records.begin(key, path)
        # Watching the response is for the log (its first byte, bodies); a trace needs none.
        watched = record.watch(send) if self.keep_records else send
        try:
            await self._answer(scope, receive, watched, path, key, started, record, trace)
        except ClientError as exc:
            record.ended_with(exc.status, exc.code)
            raise
        except asyncio.CancelledError:
            record.ended_with(499, "client_closed")
            raise
        except Exception:
            record.ended_with(500, "internal_error")
            raise
        finally:
            record.ended = time.perf_counter()
            if self.keep_records:
                self.requests.record(record)
            if trace is not None:
                trace.finish(record)

    async def _answer(
        self,
        scope: Scope,
        receive: Receive,
        send: Send,
        path: str,
        key: ClientKey,
        started: float,
        record: RequestRecord | None = None,
        trace: RequestTrace | None = None,
    ) -> None:
        settings = self.settings
        raw = await read_body(receive, settings.max_body_bytes)
        request = parse_request(raw)
        if record is not None:
            records.requested(record, request)
        group = self._group(key, request["model"])
        stream = path in STREAMING_PATHS and request.get("stream") is True
        if record is not None:
            # Bodies only for the log: a record kept for the trace alone never holds them.
            cap = settings.request_log_body_bytes if self.keep_records else 0
            records.routed(record, group, raw, stream=stream, body_cap=cap)
        if trace is not None:
            trace.model = group.name
        deadline = asyncio.get_running_loop().time() + budget(scope, settings)
        admission = await self._admit(key)
        affinity = None if group.sticky_by is None else affinity_of(group, key, scope["headers"])
        result = await self.proxy.forward(
            group, path, request, stream=stream, deadline=deadline, affinity=affinity, trace=trace
        )
        if isinstance(result, Answer):
            if record is not None:
                records.answered(record, result)
            if trace is not None:
                trace.response_model = result.model
            self.usage.record(group, error=result.status >= 400, usage=result.usage)
            admission.spend(result.usage)
            headers = [
                (b"content-type", result.content_type.encode("latin-1")),
                (INSTANCE, result.instance.name.encode()),
                (ATTEMPTS, str(result.attempts).encode()),
                *policy_headers(group),
                *admission.headers(),
            ]
            await send_bytes(send, result.status, result.body, headers)
            metrics.first_byte(group.workspace, group.name).observe(result.first_byte - started)
        elif isinstance(result, StreamAnswer):
            if record is not None:
                records.answered(record, result)
            first_byte = result.first_byte - started
            if trace is not None:
                trace.first_chunk_s = first_byte
                trace.response_model = first_event_model(result.first_chunk)
            metrics.first_byte(group.workspace, group.name).observe(first_byte)
            await self.streams.relay(group, result, receive, send, admission, record)
        else:
            if record is not None:
                records.exhausted(record, result)
            self.usage.record(group, error=True)
            await self._exhausted(group, result, send, admission)
        # Whatever the gateway did itself: parsing, routing, limits, relaying, answering.
        own = time.perf_counter() - started - result.waited
        metrics.added(group.workspace, group.name).observe(own)

    async def _exhausted(
        self, group: GroupRoute, result: Exhausted, send: Send, admission: Admission
    ) -> None:
        # Reason codes only: upstream addresses and error texts stay in the logs and admin API.
        if not group.instances:
            message = f"The model group '{group.name}' has no enabled instances."
        else:
            codes = ", ".join(f"{o.instance}: {o.code}" for o in result.outcomes)
            message = (
                f"No instance of '{group.name}' could answer after {result.attempts} "
                f"attempt{'s' if result.attempts != 1 else ''} ({codes})."
            )
        body = error_body(
            message,
            type_="service_unavailable",
            code="all_instances_failed",
            attempts=result.client_view(),
            attempt_count=result.attempts,
        )
        headers = [JSON, (ATTEMPTS, str(result.attempts).encode()), *admission.headers()]
        await send_bytes(send, 503, body, headers)
