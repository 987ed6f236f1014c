"""Real servers on loopback for the gateway tests: fake OpenAI backends and gateway replicas.

Each server runs in its own thread with its own event loop, so tests can drive them with the
synchronous and the asynchronous OpenAI clients alike.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import threading
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import httpx
import uvicorn
from aiohttp import web

from modelyard_common.auth import issue_token
from modelyard_gateway.app import create_app
from modelyard_gateway.routing.engine import RoutingEngine
from modelyard_gateway.settings import GatewaySettings
from modelyard_testkit.servers import free_port

STREAM_PROMPT_TOKENS = 4  # what a fake backend's stream reports as its prompt (include_usage)


class LoopThread:
    """An event loop running in a daemon thread."""

    def __init__(self, name: str) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name=name, daemon=True)
        self.thread.start()

    def run(self, coro: Awaitable[Any], timeout: float = 30.0) -> Any:
        """Run a coroutine on the thread's loop and return its result."""
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)  # type: ignore[arg-type]

    def stop(self) -> None:
        """Cancel what still runs on the loop, stop it, join the thread and close the loop."""

        async def cancel_rest() -> None:
            rest = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
            for task in rest:
                task.cancel()
            await asyncio.gather(*rest, return_exceptions=True)

        with contextlib.suppress(Exception):
            self.run(cancel_rest(), timeout=10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)
        if self.thread.is_alive():
            raise RuntimeError(f"loop thread {self.thread.name} did not stop")
        self.loop.close()


@dataclass
class BackendBehaviour:
    """What a fake backend does with the next requests (change it at any time)."""

    mode: str = "ok"  # ok | hang | 500 | 429 | any other 4xx, e.g. 400 | malformed | drop
    retry_after: str | None = None
    stream_chunks: int = 3
    chunk_delay_s: float = 0.0
    first_byte_delay_s: float = 0.0
    delay_s: float = 0.0  # before answering at all (whatever the mode)
    health_status: int = 200
    reply: str = "Hello"


@dataclass
class FakeBackend:
    """An OpenAI-compatible HTTP server on loopback that can be told to misbehave."""

    name: str
    port: int = 0
    behaviour: BackendBehaviour = field(default_factory=BackendBehaviour)
    requests: list[dict[str, Any]] = field(default_factory=list)
    headers: list[dict[str, str]] = field(default_factory=list)
    probe_headers: list[dict[str, str]] = field(default_factory=list)
    peers: set[tuple[str, int]] = field(default_factory=set)
    health_checks: int = 0
    streams_cancelled: int = 0
    keepalive_timeout: float = 75.0
    _runner: web.AppRunner | None = None

    @property
    def host(self) -> str:
        return "127.0.0.1"

    def reset(self) -> None:
        """Go back to well-behaved and forget what was received."""
        self.behaviour = BackendBehaviour()
        self.requests.clear()
        self.health_checks = 0
        self.streams_cancelled = 0

    async def start(self) -> None:
        app = web.Application()
        app.router.add_post("/v1/chat/completions", self._chat)
        app.router.add_post("/v1/completions", self._completions)
        app.router.add_post("/v1/embeddings", self._embeddings)
        app.router.add_get("/v1/models", self._models)
        self._runner = web.AppRunner(
            app,
            access_log=None,
            handler_cancellation=True,
            keepalive_timeout=self.keepalive_timeout,
        )
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        server = site._server
        assert server is not None
        sockets = getattr(server, "sockets", None) or []
        self.port = sockets[0].getsockname()[1]

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    async def _misbehave(self, request: web.Request) -> web.StreamResponse | None:
        b = self.behaviour
        if b.delay_s:
            await asyncio.sleep(b.delay_s)
        if b.mode == "hang":
            await asyncio.sleep(60)
        if b.mode == "500":
            return web.json_response({"error": {"message": "boom"}}, status=500)
        if b.mode == "429":
            headers = {"Retry-After": b.retry_after} if b.retry_after else None
            return web.json_response(
                {"error": {"message": "slow down", "type": "rate_limit"}},
                status=429,
                headers=headers,
            )
        if len(b.mode) == 3 and b.mode.startswith("4"):  # the request's own fault
            return web.json_response(
                {
                    "error": {
                        "message": "messages is too long",
                        "type": "invalid_request_error",
                        "code": "context_length_exceeded" if b.mode == "400" else f"e{b.mode}",
                        "param": "messages",
                    }
                },
                status=int(b.mode),
            )
        if b.mode == "malformed":
            return web.Response(text='{"id": "x", "choices": [', content_type="application/json")
        return None

    async def _chat(self, request: web.Request) -> web.StreamResponse:
        body = await request.json()
        self.requests.append(body)
        self.headers.append(dict(request.headers))
        if request.transport is not None:
            self.peers.add(request.transport.get_extra_info("peername"))
        bad = await self._misbehave(request)
        if bad is not None:
            return bad
        if body.get("stream"):
            return await self._stream(request, body, chat=True)
        if self.behaviour.mode == "drop":
            return await self._drop_plain(request)
        return web.json_response(
            {
                "id": "chatcmpl-1",
                "object": "chat.completion",
                "created": int(time.time()),
                "model": body.get("model"),
                "choices": [
                    {
                        "index": 0,
                        "message": {
                            "role": "assistant",
                            "content": f"{self.behaviour.reply} from {self.name}",
                        },
                        "finish_reason": "stop",
                    }
                ],
                "usage": {"prompt_tokens": 1, "completion_tokens": 2, "total_tokens": 3},
            }
        )

    async def _completions(self, request: web.Request) -> web.StreamResponse:
        body = await request.json()
        self.requests.append(body)
        bad = await self._misbehave(request)
        if bad is not None:
            return bad
        if body.get("stream"):
            return await self._stream(request, body, chat=False)
        return web.json_response(
            {
                "id": "cmpl-1",
                "object": "text_completion",
                "created": int(time.time()),
                "model": body.get("model"),
                "choices": [
                    {"index": 0, "text": f"text from {self.name}", "finish_reason": "stop"}
                ],
            }
        )

    async def _embeddings(self, request: web.Request) -> web.StreamResponse:
        body = await request.json()
        self.requests.append(body)
        bad = await self._misbehave(request)
        if bad is not None:
            return bad
        inputs = body.get("input")
        count = len(inputs) if isinstance(inputs, list) else 1
        return web.json_response(
            {
                "object": "list",
                "model": body.get("model"),
                "data": [
                    {"object": "embedding", "index": i, "embedding": [0.1, 0.2, 0.3]}
                    for i in range(count)
                ],
                "usage": {"prompt_tokens": 1, "total_tokens": 1},
            }
        )

    async def _models(self, request: web.Request) -> web.StreamResponse:
        self.health_checks += 1
        self.probe_headers.append(dict(request.headers))
        if self.behaviour.health_status != 200:
            return web.json_response({"error": "unhealthy"}, status=self.behaviour.health_status)
        return web.json_response({"object": "list", "data": [{"id": "m", "object": "model"}]})

    async def _drop_plain(self, request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "application/json"})
        response.enable_chunked_encoding()
        await response.prepare(request)
        await response.write(b'{"id": "chatcmpl-1", "choi')
        assert request.transport is not None
        request.transport.abort()
        return response

    async def _stream(
        self, request: web.Request, body: dict[str, Any], *, chat: bool
    ) -> web.StreamResponse:
        b = self.behaviour
        if b.first_byte_delay_s:
            await asyncio.sleep(b.first_byte_delay_s)
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        response.enable_chunked_encoding()
        await response.prepare(request)
        if b.mode == "drop_before_first":
            assert request.transport is not None
            request.transport.abort()
            return response
        # As OpenAI does with `stream_options.include_usage`: `usage` null in every chunk, then
        # a last chunk without choices that carries it.
        options = body.get("stream_options")
        include_usage = isinstance(options, dict) and options.get("include_usage") is True
        try:
            for i in range(b.stream_chunks):
                if chat:
                    delta: dict[str, Any] = {"content": f"{b.reply}{i} "}
                    if i == 0:
                        delta["role"] = "assistant"
                    chunk = {
                        "id": "chatcmpl-1",
                        "object": "chat.completion.chunk",
                        "created": 1,
                        "model": body.get("model"),
                        "choices": [{"index": 0, "delta": delta, "finish_reason": None}],
                    }
                else:
                    chunk = {
                        "id": "cmpl-1",
                        "object": "text_completion",
                        "created": 1,
                        "model": body.get("model"),
                        "choices": [{"index": 0, "text": f"{b.reply}{i} ", "finish_reason": None}],
                    }
                if include_usage:
                    chunk["usage"] = None
                await response.write(b"data: " + json.dumps(chunk).encode() + b"\n\n")
                if b.mode == "drop" and i == 0:
                    assert request.transport is not None
                    request.transport.abort()
                    return response
                if b.chunk_delay_s:
                    await asyncio.sleep(b.chunk_delay_s)
            if include_usage:
                usage = {
                    "prompt_tokens": STREAM_PROMPT_TOKENS,
                    "completion_tokens": b.stream_chunks,
                    "total_tokens": STREAM_PROMPT_TOKENS + b.stream_chunks,
                }
                last = {"id": "chatcmpl-1", "object": "chat.completion.chunk", "created": 1}
                last.update({"model": body.get("model"), "choices": [], "usage": usage})
                await response.write(b"data: " + json.dumps(last).encode() + b"\n\n")
            await response.write(b"data: [DONE]\n\n")
            await response.write_eof()
        except (asyncio.CancelledError, ConnectionResetError):
            self.streams_cancelled += 1
            raise
        return response


class BackendPool:
    """Fake backends sharing one loop thread."""

    def __init__(self) -> None:
        self.thread = LoopThread("fake-backends")
        self.backends: list[FakeBackend] = []

    def new(self, name: str) -> FakeBackend:
        backend = FakeBackend(name)
        self.thread.run(backend.start())
        self.backends.append(backend)
        return backend

    def close(self) -> None:
        for backend in self.backends:
            with contextlib.suppress(Exception):
                self.thread.run(backend.stop())
        self.thread.stop()


class GatewayServer:
    """A gateway replica (uvicorn, one worker) on a loopback port, in its own thread."""

    def __init__(self, settings: GatewaySettings) -> None:
        self.settings = settings
        self.app = create_app(settings)
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        config = uvicorn.Config(
            self.app,
            host="127.0.0.1",
            port=self.port,
            log_config=None,
            access_log=False,
            lifespan="on",
            timeout_graceful_shutdown=1,
        )
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(
            target=self.server.run, name=f"gateway-{self.port}", daemon=True
        )

    @property
    def runtime(self) -> RoutingEngine:
        runtime: RoutingEngine = self.app.state.routing
        return runtime

    def start(self) -> GatewayServer:
        self.thread.start()
        deadline = time.monotonic() + 20
        while not self.server.started:
            if not self.thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("gateway did not start")
            time.sleep(0.02)
        deadline = time.monotonic() + 10
        while not self.runtime.listening.is_set():
            if time.monotonic() > deadline:
                raise RuntimeError("gateway is not listening for changes")
            time.sleep(0.02)
        return self

    def stop(self) -> None:
        """Stop the replica (its lifespan ends: background loops, pools) and its thread."""
        self.server.should_exit = True
        self.thread.join(30)
        if self.thread.is_alive():
            raise RuntimeError(f"gateway replica on port {self.port} did not stop within 30 s")

    def catalog_version(self) -> int:
        return self.runtime.catalog.version

    async def settled(self) -> None:
        """Rebuild the replica's routing catalog now, on its own loop, and wait for it.

        A reload that began before a write committed can finish after it and bump the
        version with the old config; one started now (reloads run one at a time) reads it.
        """
        loop = self.runtime._background[0].get_loop()
        done = asyncio.run_coroutine_threadsafe(self.runtime.catalog.reload(), loop)
        await asyncio.wrap_future(done)


async def eventually(
    check: Callable[[], bool], *, within: float = 10.0, interval: float = 0.02
) -> float:
    """Wait until `check()` is true; return how long it took; fail after `within` seconds."""
    started = time.monotonic()
    while not check():
        if time.monotonic() - started > within:
            raise AssertionError(f"condition not met within {within}s")
        await asyncio.sleep(interval)
    return time.monotonic() - started


class Admin:
    """A user of the admin API in one workspace (JWT), over real HTTP."""

    def __init__(
        self, gateway: GatewayServer, *, workspace: str | None = None, role: str | None = None
    ) -> None:
        self.gateway = gateway
        self.workspace = workspace or f"ws-{uuid.uuid4().hex[:10]}"
        # By default the workspace's admin (only admins create instances and say where they
        # send traffic); pass `role` for an editor, operator or viewer.
        roles = [role] if role else ["admin"]
        token = issue_token(
            secret=gateway.settings.jwt_secret, sub="tester", roles=roles, workspace=self.workspace
        )
        self.http = httpx.AsyncClient(
            base_url=gateway.url, headers={"Authorization": f"Bearer {token}"}, timeout=10
        )

    async def close(self) -> None:
        await self.http.aclose()

    async def _changed(self, before: int, response: httpx.Response) -> httpx.Response:
        if response.status_code < 300:
            # Admin writes reach the routing catalog by NOTIFY; wait until it has reloaded.
            await eventually(lambda: self.gateway.catalog_version() > before)
            await self.gateway.settled()
        return response

    async def post(self, path: str, body: dict[str, Any], **kw: Any) -> httpx.Response:
        before = self.gateway.catalog_version()
        return await self._changed(before, await self.http.post(path, json=body, **kw))

    async def patch(self, path: str, body: dict[str, Any], **kw: Any) -> httpx.Response:
        before = self.gateway.catalog_version()
        return await self._changed(before, await self.http.patch(path, json=body, **kw))

    async def delete(self, path: str) -> httpx.Response:
        before = self.gateway.catalog_version()
        return await self._changed(before, await self.http.delete(path))

    async def instance(self, backend: FakeBackend | int, **fields: Any) -> dict[str, Any]:
        """Create a local instance in front of a backend (or a port); health checks off."""
        port = backend if isinstance(backend, int) else backend.port
        name = fields.pop("name", None) or f"inst-{uuid.uuid4().hex[:8]}"
        body = {
            "name": name,
            "kind": "local",
            "host": "127.0.0.1",
            "port": port,
            "upstream_model": fields.pop("upstream_model", f"upstream-{name}"),
            "connect_timeout_s": 1.0,
            "read_timeout_s": 1.0,
            "health_path": "",
            **fields,
        }
        response = await self.post("/v1/instances", body)
        assert response.status_code == 201, response.text
        created: dict[str, Any] = response.json()
        return created

    async def group(
        self, name: str, instances: list[dict[str, Any]], **fields: Any
    ) -> dict[str, Any]:
        body = {"name": name, "instance_ids": [i["id"] for i in instances], **fields}
        response = await self.post("/v1/groups", body)
        assert response.status_code == 201, response.text
        created: dict[str, Any] = response.json()
        return created

    async def key(self, groups: list[str] | None = None, **fields: Any) -> str:
        key: str = (await self.key_created(groups, **fields))["key"]
        return key

    async def key_created(self, groups: list[str] | None = None, **fields: Any) -> dict[str, Any]:
        """Create a key (with `limits`, `expires_at`, ...); return the whole answer."""
        body = {"name": "test key", "groups": groups, **fields}
        response = await self.post("/v1/keys", body)
        assert response.status_code == 201, response.text
        created: dict[str, Any] = response.json()
        return created
