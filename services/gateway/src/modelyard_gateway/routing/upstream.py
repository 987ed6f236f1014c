"""Sending requests to instances: one pooled aiohttp client session per replica."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Protocol

import aiohttp

from modelyard_gateway.destination import DestinationError, join
from modelyard_gateway.egress import EgressPolicy, connect_guard
from modelyard_gateway.routing.catalog import InstanceRoute
from modelyard_gateway.routing.fastclient import (
    BodyCutOff,
    BoundReached,
    ConnectFailed,
    ConnectTimeout,
    FastClient,
    MalformedResponse,
)

# Instance faults that upstreams signal with a 4xx: the credentials the gateway holds for it are
# refused (401, 403, 407), it timed out (408) or it is rate limiting (429); these fail over. Any
# other 4xx (400, 404, 405, 413, 422, ...) is about the request itself: another instance would
# refuse it too, so it goes back to the client as is. A 404 included: an endpoint the backend
# lacks (`embeddings` on a chat-only server) is the request's, and a wrong path prefix is caught
# by the health checks.
INSTANCE_FAULT_4XX = frozenset({401, 403, 407, 408, 429})


class UpstreamFailure(Exception):
    """An attempt that failed because of the instance; the proxy moves on to the next one."""

    def __init__(
        self,
        cause: str,
        reason: str,
        retry_after: float | None = None,
        *,
        status: int | None = None,
    ) -> None:
        super().__init__(reason)
        self.cause = cause
        self.reason = reason
        self.retry_after = retry_after
        self.status = status  # the upstream's HTTP status, when it answered one


def new_client_session() -> aiohttp.ClientSession:
    """Return the client session used for every upstream request of this replica."""
    connector = aiohttp.TCPConnector(
        limit=0, ttl_dns_cache=300, keepalive_timeout=30, enable_cleanup_closed=True
    )
    return aiohttp.ClientSession(
        connector=connector,
        auto_decompress=False,
        skip_auto_headers=("User-Agent",),
        timeout=aiohttp.ClientTimeout(total=None),
    )


def parse_retry_after(value: str | None) -> float | None:
    """Return the seconds of a Retry-After header given in seconds, else None."""
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        return None


def describe(exc: BaseException) -> str:
    """Return a short human reason for a transport error."""
    text = str(exc) or type(exc).__name__
    return text[:300]


class UpstreamResponse(Protocol):
    """An upstream answer whose headers have arrived; the body is read as it comes.

    `until` (event loop clock, or None) bounds every further wait; past it a read raises
    `BoundReached`. The proxy moves it: first-byte deadline, then the request's deadline.
    """

    status: int
    until: float | None

    def header(self, name: str) -> str | None: ...

    async def next_chunk(self) -> bytes: ...

    async def read(self, limit: int | None = None) -> bytes: ...

    def release(self) -> None: ...

    def close(self) -> None: ...


class AiohttpResponse:
    """An aiohttp response seen through the `UpstreamResponse` interface."""

    __slots__ = ("_resp", "status", "until")

    def __init__(self, resp: aiohttp.ClientResponse, until: float | None) -> None:
        self._resp = resp
        self.status = resp.status
        self.until = until

    def header(self, name: str) -> str | None:
        """Return the first value of a response header, or None."""
        return self._resp.headers.get(name)

    async def next_chunk(self) -> bytes:
        """Return the next piece of the body as it arrives; b"" at its end."""
        async with _bounded(self.until):
            return await self._resp.content.readany()

    async def read(self, limit: int | None = None) -> bytes:
        """Return the whole body (or its first `limit` bytes)."""
        async with _bounded(self.until):
            if limit is not None:
                return await self._resp.content.read(limit)
            return await self._resp.read()

    def release(self) -> None:
        """Give the connection back to the pool."""
        self._resp.release()

    def close(self) -> None:
        """Drop the connection."""
        self._resp.close()


@contextlib.asynccontextmanager
async def _bounded(until: float | None) -> AsyncIterator[None]:
    """Raise BoundReached if the block runs past `until` (loop clock)."""
    if until is None:
        yield
        return
    window = asyncio.timeout_at(until)
    try:
        async with window:
            yield
    except TimeoutError as exc:
        if window.expired():
            raise BoundReached() from exc
        raise


class Upstreams:
    """Sends requests to instances: the lean client, or aiohttp for instances behind a proxy."""

    def __init__(self, *, egress: EgressPolicy | None = None) -> None:
        self.fast = FastClient(guard=connect_guard(egress) if egress is not None else None)
        self.session = new_client_session()

    async def post(
        self,
        inst: InstanceRoute,
        path: str,
        payload: bytes,
        *,
        connect_timeout: float,
        read_timeout: float,
        until: float | None = None,
        traceparent: str | None = None,
    ) -> UpstreamResponse:
        """Send a POST to an instance and return once the response headers have arrived.

        `read_timeout` bounds each wait for bytes (the idle gap); `until` (loop clock) bounds
        everything up to the headers and stays on the response for the reads that follow.
        `traceparent` (W3C trace context) goes along as that header.
        """
        if inst.target is not None:
            return await self.fast.post(
                inst.target,
                path,
                payload,
                connect_timeout=connect_timeout,
                read_timeout=read_timeout,
                until=until,
                extra_head=None
                if traceparent is None
                else b"traceparent: " + traceparent.encode("ascii") + b"\r\n",
            )
        headers = inst.headers
        if traceparent is not None:
            headers = {**headers, "traceparent": traceparent}
        async with _bounded(until):
            resp = await self.session.post(
                inst.base_url + path,
                data=payload,
                headers=headers,
                timeout=aiohttp.ClientTimeout(
                    total=None, sock_connect=connect_timeout, sock_read=read_timeout
                ),
                proxy=inst.proxy_url,
                proxy_headers=inst.proxy_headers,
                # A redirect would carry the instance's secret headers to wherever it points.
                allow_redirects=False,
            )
        return AiohttpResponse(resp, until)

    async def close(self) -> None:
        """Close every connection."""
        self.fast.close()
        await self.session.close()


def classify_transport_error(exc: BaseException, inst: InstanceRoute) -> UpstreamFailure:
    """Return the failure that a transport exception means for the failover."""
    if isinstance(exc, ConnectTimeout):
        return UpstreamFailure(
            "connect_timeout", f"connect timed out after {inst.timeout.sock_connect}s"
        )
    if isinstance(exc, ConnectFailed):
        return UpstreamFailure("connect_failed", f"connection failed: {describe(exc)}")
    if isinstance(exc, BodyCutOff):
        return UpstreamFailure("dropped", f"answer cut off: {describe(exc)}")
    if isinstance(exc, MalformedResponse):
        return UpstreamFailure("malformed", describe(exc))
    if isinstance(exc, aiohttp.ConnectionTimeoutError):
        return UpstreamFailure(
            "connect_timeout", f"connect timed out after {inst.timeout.sock_connect}s"
        )
    if isinstance(exc, TimeoutError):
        return UpstreamFailure("idle_timeout", "the upstream stopped sending")
    if isinstance(exc, aiohttp.ClientConnectorError):
        return UpstreamFailure("connect_failed", f"connection failed: {describe(exc.os_error)}")
    if isinstance(exc, aiohttp.ClientPayloadError):
        return UpstreamFailure("dropped", f"answer cut off: {describe(exc)}")
    return UpstreamFailure("connection_error", f"connection error: {describe(exc)}")


@dataclass(slots=True)
class ProbeResult:
    """The outcome of one health probe."""

    ok: bool
    latency_ms: float
    status: int | None
    error: str | None
    # A fixed word for the outcome (`ok`, `http_status`, `timeout`, `connect_failed`, ...):
    # what `POST /check` answers, never the transport's own text.
    code: str = "ok"


async def probe(
    session: aiohttp.ClientSession, inst: InstanceRoute, *, path: str, timeout_s: float
) -> ProbeResult:
    """Return whether `GET {base}{path}` answers 2xx within the timeout, and how fast."""
    headers = {k: v for k, v in inst.headers.items() if k.lower() != "content-type"}
    try:
        url = join(inst.base_url, path)
    except DestinationError:
        # Refused before any connection: a path that is not a path never leaves the gateway.
        return ProbeResult(False, 0.0, None, "the health path is not a path", "refused")
    started = time.perf_counter()
    try:
        async with session.get(
            url,
            headers=headers,
            proxy=inst.proxy_url,
            proxy_headers=inst.proxy_headers,
            timeout=aiohttp.ClientTimeout(total=timeout_s, sock_connect=inst.timeout.sock_connect),
            # Never follow: a redirect could lead the probe and its secrets past the egress policy.
            allow_redirects=False,
        ) as resp:
            await resp.read()
            latency = (time.perf_counter() - started) * 1000
            if 200 <= resp.status < 300:
                return ProbeResult(True, latency, resp.status, None)
            return ProbeResult(False, latency, resp.status, f"HTTP {resp.status}", "http_status")
    except (aiohttp.ClientError, TimeoutError, OSError) as exc:
        latency = (time.perf_counter() - started) * 1000
        failure = classify_transport_error(exc, inst)
        if isinstance(exc, TimeoutError):
            failure.reason = f"no answer within {timeout_s}s"
            failure.cause = "timeout"
        return ProbeResult(False, latency, None, failure.reason, failure.cause)
    except asyncio.CancelledError:
        raise
