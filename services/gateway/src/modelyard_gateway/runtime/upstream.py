"""Sending requests to instances: one pooled aiohttp client session per replica."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass

import aiohttp

from modelyard_gateway.runtime.catalog import InstanceRoute

# Instance faults that upstreams signal with a 4xx: our credentials, path or model name are wrong,
# or the upstream is rate limiting. Any other 4xx is the client's request and goes back as is.
INSTANCE_FAULT_4XX = frozenset({401, 403, 404, 407, 408, 429})


class UpstreamFailure(Exception):
    """An attempt that failed because of the instance; the proxy moves on to the next one."""

    def __init__(self, cause: str, reason: str, retry_after: float | None = None) -> None:
        super().__init__(reason)
        self.cause = cause
        self.reason = reason
        self.retry_after = retry_after


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


def classify_transport_error(exc: BaseException, inst: InstanceRoute) -> UpstreamFailure:
    """Return the failure that a transport exception means for the failover."""
    if isinstance(exc, aiohttp.ConnectionTimeoutError):
        return UpstreamFailure(
            "connect_timeout", f"connect timed out after {inst.timeout.sock_connect}s"
        )
    if isinstance(exc, TimeoutError):
        return UpstreamFailure("timeout", f"no answer within {inst.timeout.sock_read}s")
    if isinstance(exc, aiohttp.ClientConnectorError):
        return UpstreamFailure("connect", f"connection failed: {describe(exc.os_error)}")
    if isinstance(exc, aiohttp.ClientPayloadError):
        return UpstreamFailure("dropped", f"answer cut off: {describe(exc)}")
    return UpstreamFailure("connection", f"connection error: {describe(exc)}")


@dataclass(slots=True)
class ProbeResult:
    """The outcome of one health probe."""

    ok: bool
    latency_ms: float
    status: int | None
    error: str | None


async def probe(
    session: aiohttp.ClientSession, inst: InstanceRoute, *, path: str, timeout_s: float
) -> ProbeResult:
    """Return whether `GET {base}{path}` answers 2xx within the timeout, and how fast."""
    headers = {k: v for k, v in inst.headers.items() if k.lower() != "content-type"}
    started = time.perf_counter()
    try:
        async with session.get(
            inst.base_url + path,
            headers=headers,
            proxy=inst.proxy_url,
            proxy_auth=inst.proxy_auth,
            timeout=aiohttp.ClientTimeout(total=timeout_s, sock_connect=inst.timeout.sock_connect),
        ) as resp:
            await resp.read()
            latency = (time.perf_counter() - started) * 1000
            if 200 <= resp.status < 300:
                return ProbeResult(True, latency, resp.status, None)
            return ProbeResult(False, latency, resp.status, f"HTTP {resp.status}")
    except (aiohttp.ClientError, TimeoutError, OSError) as exc:
        latency = (time.perf_counter() - started) * 1000
        failure = classify_transport_error(exc, inst)
        if isinstance(exc, TimeoutError):
            failure.reason = f"no answer within {timeout_s}s"
        return ProbeResult(False, latency, None, failure.reason)
    except asyncio.CancelledError:
        raise
