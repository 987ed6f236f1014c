"""OpenAI-compatible routes, served as raw ASGI so the hot path stays lean.

`ProxyFastPath` answers proxy requests before the rest of the middleware stack (request logging,
CORS for browsers) runs; requests from browsers (with an `Origin` header) take the ordinary route
through FastAPI, which calls the same handlers. Either way, no database query runs per request.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, MutableMapping
from typing import TYPE_CHECKING, Any

import aiohttp
import orjson
from fastapi import APIRouter
from fastapi.responses import Response

from modelyard_gateway import metrics
from modelyard_gateway.proxy.schemas import (
    OPENAI_ERRORS,
    ModelList,
    ModelObject,
    PassThroughRequest,
    error_body,
)
from modelyard_gateway.proxy.service import Answer, Exhausted, StreamAnswer
from modelyard_gateway.runtime.catalog import ClientKey, GroupRoute
from modelyard_gateway.runtime.fastclient import BoundReached
from modelyard_gateway.runtime.upstream import UpstreamResponse
from modelyard_gateway.settings import GatewaySettings
from modelyard_gateway.usage.service import StreamUsage

if TYPE_CHECKING:
    from modelyard_gateway.runtime.runner import Runtime

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

log = logging.getLogger("modelyard.gateway.proxy")

POST_PATHS = frozenset({"/v1/chat/completions", "/v1/completions", "/v1/embeddings"})
STREAMING_PATHS = frozenset({"/v1/chat/completions", "/v1/completions"})
MODELS_PATH = "/v1/models"
MODELS_PREFIX = "/v1/models/"

_JSON = (b"content-type", b"application/json")
_SSE_HEADERS = [
    (b"content-type", b"text/event-stream; charset=utf-8"),
    (b"cache-control", b"no-cache"),
    (b"x-accel-buffering", b"no"),
]
_INSTANCE = b"x-modelyard-instance"
_ATTEMPTS = b"x-modelyard-attempts"


class ClientError(Exception):
    """A request the gateway refuses itself, answered in OpenAI's error shape."""

    def __init__(
        self, status: int, message: str, *, type_: str, code: str, param: str | None = None
    ) -> None:
        super().__init__(message)
        self.status = status
        self.body = error_body(message, type_=type_, code=code, param=param)


async def _send_bytes(
    send: Send, status: int, body: bytes, headers: list[tuple[bytes, bytes]]
) -> None:
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


def _bearer(scope: Scope) -> str | None:
    for name, value in scope["headers"]:
        if name == b"authorization":
            scheme, _, token = value.decode("latin-1").partition(" ")
            return token.strip() if scheme.lower() == "bearer" and token.strip() else None
    return None


async def _read_body(receive: Receive, limit: int) -> bytes:
    message = await receive()
    body: bytes = message.get("body", b"")
    if not message.get("more_body", False):
        if len(body) > limit:
            raise ClientError(
                413,
                "The request body is too large.",
                type_="invalid_request_error",
                code="too_large",
            )
        return body
    parts = [body]
    size = len(body)
    while message.get("more_body", False):
        message = await receive()
        if message["type"] == "http.disconnect":
            raise asyncio.CancelledError
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise ClientError(
                413,
                "The request body is too large.",
                type_="invalid_request_error",
                code="too_large",
            )
        parts.append(chunk)
    return b"".join(parts)


_TIMEOUT_HEADER = b"x-modelyard-timeout"
_POLICY_WARNING = b"x-modelyard-policy-warning"


def _policy_headers(group: GroupRoute) -> list[tuple[bytes, bytes]]:
    """Return the warning header of a group served only because the gate is `warn`."""
    if group.warning is None:
        return []
    # Header values are latin-1; a model name in another script is replaced, not a 500.
    return [(_POLICY_WARNING, group.warning.encode("latin-1", "replace"))]


def _budget(scope: Scope, settings: GatewaySettings) -> float:
    """Return the request's deadline in seconds: `X-Modelyard-Timeout` if given, capped."""
    for name, value in scope["headers"]:
        if name == _TIMEOUT_HEADER:
            try:
                seconds = float(value.decode("latin-1"))
            except ValueError:
                seconds = -1.0
            if not seconds > 0 or seconds == float("inf"):
                raise ClientError(
                    400,
                    "X-Modelyard-Timeout must be a positive number of seconds.",
                    type_="invalid_request_error",
                    code="invalid_timeout",
                )
            return min(seconds, settings.max_request_deadline_s)
    return min(settings.request_deadline_s, settings.max_request_deadline_s)


def _event_boundary(data: bytes) -> int:
    """Return the end of the last complete SSE event in `data`, or 0."""
    lf = data.rfind(b"\n\n")
    crlf = data.rfind(b"\r\n\r\n")
    return max(lf + 2 if lf >= 0 else 0, crlf + 4 if crlf >= 0 else 0)


class ProxyEndpoints:
    """The ASGI handlers of the OpenAI-compatible API."""

    def __init__(self, state: Any) -> None:
        self._state = state

    @property
    def runtime(self) -> Runtime:
        """Return the runtime started by the app's lifespan."""
        runtime: Runtime = self._state.runtime
        return runtime

    async def _client_key(self, scope: Scope) -> ClientKey:
        token = _bearer(scope)
        if token is None:
            raise ClientError(
                401,
                "You didn't provide an API key (Authorization: Bearer sk-...).",
                type_="invalid_request_error",
                code="missing_api_key",
            )
        key = await self.runtime.catalog.client_key(token)
        if key is None:
            raise ClientError(
                401,
                "Incorrect API key provided.",
                type_="invalid_request_error",
                code="invalid_api_key",
            )
        return key

    def _group(self, key: ClientKey, name: Any) -> GroupRoute:
        group = None
        if isinstance(name, str) and key.may_use(name):
            group = self.runtime.catalog.snapshot.groups.get((key.workspace, name))
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
            await _send_bytes(send, exc.status, exc.body, [_JSON])
        except Exception:
            log.exception("unexpected error on %s %s", scope["method"], scope["path"])
            body = error_body(
                "The gateway had an unexpected error.", type_="server_error", code="internal_error"
            )
            # If the response had already started this cannot be sent; the client sees the cut.
            with contextlib.suppress(Exception):
                await _send_bytes(send, 500, body, [_JSON])

    async def _list_models(self, scope: Scope, send: Send) -> None:
        key = await self._client_key(scope)
        groups = self.runtime.catalog.groups_for(key)
        body = ModelList(data=[ModelObject(id=g.name, created=g.created) for g in groups])
        await _send_bytes(send, 200, body.model_dump_json().encode(), [_JSON])

    async def _get_model(self, scope: Scope, send: Send, name: str) -> None:
        key = await self._client_key(scope)
        group = self._group(key, name)
        body = ModelObject(id=group.name, created=group.created)
        await _send_bytes(send, 200, body.model_dump_json().encode(), [_JSON])

    async def _post(self, scope: Scope, receive: Receive, send: Send, path: str) -> None:
        runtime = self.runtime
        key = await self._client_key(scope)
        raw = await _read_body(receive, runtime.settings.max_body_bytes)
        try:
            request = orjson.loads(raw)
        except orjson.JSONDecodeError as exc:
            raise ClientError(
                400,
                "The request body is not valid JSON.",
                type_="invalid_request_error",
                code="invalid_json",
            ) from exc
        if not isinstance(request, dict) or "model" not in request:
            raise ClientError(
                400,
                "The request body must be a JSON object with a `model`.",
                type_="invalid_request_error",
                code="missing_model",
                param="model",
            )
        if not isinstance(request.get("stream", False), bool):
            raise ClientError(
                400,
                "`stream` must be true or false.",
                type_="invalid_request_error",
                code="invalid_type",
                param="stream",
            )
        group = self._group(key, request["model"])
        stream = path in STREAMING_PATHS and request.get("stream") is True
        deadline = asyncio.get_running_loop().time() + _budget(scope, runtime.settings)
        result = await runtime.proxy.forward(group, path, request, stream=stream, deadline=deadline)
        if isinstance(result, Answer):
            runtime.usage.record(group, error=result.status >= 400, usage=result.usage)
            headers = [
                (b"content-type", result.content_type.encode("latin-1")),
                (_INSTANCE, result.instance.name.encode()),
                (_ATTEMPTS, str(result.attempts).encode()),
                *_policy_headers(group),
            ]
            await _send_bytes(send, result.status, result.body, headers)
        elif isinstance(result, StreamAnswer):
            await self._relay(group, result, receive, send)
        else:
            runtime.usage.record(group, error=True)
            await self._exhausted(group, result, send)

    async def _exhausted(self, group: GroupRoute, result: Exhausted, send: Send) -> None:
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
        await _send_bytes(send, 503, body, [_JSON, (_ATTEMPTS, str(result.attempts).encode())])

    async def _relay(
        self,
        group: GroupRoute,
        answer: StreamAnswer,
        receive: Receive,
        send: Send,
    ) -> None:
        # The stream is pumped in this task; a watcher cancels it when the client goes away, so
        # the upstream connection is dropped at once (uvicorn's send() ignores a gone client).
        relay = asyncio.current_task()
        assert relay is not None
        progress = _RelayProgress()
        watcher = asyncio.ensure_future(_watch_disconnect(receive, relay, progress))
        try:
            await self._pump(group, answer, send, progress)
        except asyncio.CancelledError:
            if not progress.client_gone:
                raise
            relay.uncancel()
            answer.response.close()
            self.runtime.board.abandoned(answer.ticket)
            metrics.requests(
                group.workspace, group.name, answer.instance.name, "client_closed"
            ).inc()
            self.runtime.usage.record(group, error=False)  # the client left: not the model's error
        finally:
            progress.finished = True
            watcher.cancel()

    async def _pump(
        self,
        group: GroupRoute,
        answer: StreamAnswer,
        send: Send,
        progress: _RelayProgress,
    ) -> None:
        headers = [
            *_SSE_HEADERS,
            (_INSTANCE, answer.instance.name.encode()),
            (_ATTEMPTS, str(answer.attempts).encode()),
            *_policy_headers(group),
        ]
        if not answer.content_type.startswith("text/event-stream"):
            headers[0] = (b"content-type", answer.content_type.encode("latin-1"))
        await send({"type": "http.response.start", "status": answer.status, "headers": headers})
        board = self.runtime.board
        inst = answer.instance
        upstream = answer.response
        pending = answer.first_chunk
        tap = StreamUsage() if group.registry_model_id is not None else None
        if tap is not None:
            tap.feed(pending)
        cut = _event_boundary(pending)
        if cut:
            await send({"type": "http.response.body", "body": pending[:cut], "more_body": True})
            pending = pending[cut:]
        try:
            # The upstream's reads are bounded by the request's deadline (`until`).
            pending = await _copy(upstream, send, pending, tap)
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            progress.finished = True
            upstream.close()
            if isinstance(exc, BoundReached):
                reason, cause = "the request's deadline ran out", "deadline_exceeded"
            elif isinstance(exc, TimeoutError):
                reason = f"the upstream sent nothing for {answer.idle_timeout:g}s"
                cause = "stream_timeout"
            else:
                reason, cause = "the upstream stream was cut off", "stream_dropped"
            if cause != "deadline_exceeded":
                board.failed(answer.ticket, reason, code=cause)
            else:
                board.abandoned(answer.ticket)
            metrics.failures(group.workspace, group.name, inst.name, cause).inc()
            metrics.requests(group.workspace, group.name, inst.name, "stream_failed").inc()
            self.runtime.usage.record(group, error=True)
            event = error_body(
                f"Instance '{inst.name}' failed mid-stream: {reason}.",
                type_="upstream_error",
                code="stream_interrupted",
            )
            await send(
                {
                    "type": "http.response.body",
                    "body": b"data: " + event + b"\n\n",
                    "more_body": False,
                }
            )
            return
        progress.finished = True
        upstream.release()
        board.succeeded(answer.ticket)
        metrics.requests(group.workspace, group.name, inst.name, "ok").inc()
        self.runtime.usage.record(group, error=False, usage=tap.usage() if tap else None)
        await send({"type": "http.response.body", "body": pending, "more_body": False})


async def _copy(
    upstream: UpstreamResponse, send: Send, pending: bytes, tap: StreamUsage | None = None
) -> bytes:
    """Relay the upstream's chunks cut on SSE event boundaries; return the unsent tail."""
    while chunk := await upstream.next_chunk():
        data = pending + chunk if pending else chunk
        if tap is not None:
            tap.feed(data)
        cut = _event_boundary(data)
        if cut == len(data):
            pending = b""
            await send({"type": "http.response.body", "body": data, "more_body": True})
        elif cut:
            pending = data[cut:]
            await send({"type": "http.response.body", "body": data[:cut], "more_body": True})
        else:
            pending = data
    return pending


class _RelayProgress:
    __slots__ = ("client_gone", "finished")

    def __init__(self) -> None:
        self.client_gone = False
        self.finished = False


async def _watch_disconnect(
    receive: Receive, relay: asyncio.Task[object], progress: _RelayProgress
) -> None:
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            break
    if not progress.finished:
        progress.client_gone = True
        relay.cancel()


class ProxyFastPath:
    """ASGI middleware that hands OpenAI-compatible requests straight to `ProxyEndpoints`."""

    def __init__(self, app: ASGIApp, endpoints: ProxyEndpoints) -> None:
        self.app = app
        self.endpoints = endpoints

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Serve proxy paths directly; pass browsers (Origin header) and the rest on."""
        if scope["type"] == "http":
            path = scope["path"]
            method = scope["method"]
            if (
                (method == "POST" and path in POST_PATHS)
                or (method == "GET" and (path == MODELS_PATH or path.startswith(MODELS_PREFIX)))
            ) and not any(name == b"origin" for name, _ in scope["headers"]):
                await self.endpoints(scope, receive, send)
                return
        await self.app(scope, receive, send)


class _DelegatedResponse(Response):
    """A response that lets `ProxyEndpoints` answer the raw ASGI request."""

    def __init__(self, endpoints: ProxyEndpoints) -> None:
        super().__init__()
        self._endpoints = endpoints

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self._endpoints(scope, receive, send)


def _request_body(example: dict[str, Any]) -> dict[str, Any]:
    return {
        "requestBody": {
            "required": True,
            "content": {
                "application/json": {
                    "schema": PassThroughRequest.model_json_schema(),
                    "example": example,
                }
            },
        }
    }


def build_router(endpoints: ProxyEndpoints) -> APIRouter:
    """Return the documented OpenAI-compatible routes (served by `endpoints`)."""
    router = APIRouter(tags=["openai"], responses=OPENAI_ERRORS)
    stream_doc = " With `stream: true` the answer is server-sent events, relayed as they arrive."

    @router.post(
        "/v1/chat/completions",
        operation_id="create_chat_completion",
        summary="Create a chat completion through the group's first available instance",
        description="OpenAI's chat completions API; fields besides `model` pass through."
        + stream_doc,
        response_model=dict[str, Any],
        openapi_extra=_request_body(
            {"model": "chat", "messages": [{"role": "user", "content": "Hello"}]}
        ),
    )
    async def create_chat_completion() -> Response:
        """Relay a chat completion (or its stream) from the first available instance."""
        return _DelegatedResponse(endpoints)

    @router.post(
        "/v1/completions",
        operation_id="create_completion",
        summary="Create a text completion through the group's first available instance",
        description="OpenAI's (legacy) completions API." + stream_doc,
        response_model=dict[str, Any],
        openapi_extra=_request_body({"model": "chat", "prompt": "Once upon a time"}),
    )
    async def create_completion() -> Response:
        """Relay a completion (or its stream) from the first available instance."""
        return _DelegatedResponse(endpoints)

    @router.post(
        "/v1/embeddings",
        operation_id="create_embedding",
        summary="Create embeddings through the group's first available instance",
        response_model=dict[str, Any],
        openapi_extra=_request_body({"model": "embed", "input": ["some text"]}),
    )
    async def create_embedding() -> Response:
        """Relay an embeddings request to the first available instance."""
        return _DelegatedResponse(endpoints)

    @router.get(
        "/v1/models",
        operation_id="list_openai_models",
        summary="List the model groups this API key may use",
        response_model=ModelList,
    )
    async def list_openai_models() -> Response:
        """Return the enabled model groups this key may use."""
        return _DelegatedResponse(endpoints)

    @router.get(
        "/v1/models/{model_id:path}",
        operation_id="get_openai_model",
        summary="Get one model group this API key may use",
        response_model=ModelObject,
    )
    async def get_openai_model(model_id: str) -> Response:
        """Return one model group this key may use."""
        return _DelegatedResponse(endpoints)

    return router
