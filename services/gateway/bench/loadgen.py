"""Load generator (a separate process): N keep-alive connections, a fixed number of requests.

Prints one JSON object: requests/s, latency and time-to-first-byte percentiles, status counts.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from urllib.parse import urlsplit

import httptools
import uvloop


class ClientProtocol(asyncio.Protocol):
    """One keep-alive HTTP/1.1 connection that sends a request and waits for its full answer."""

    def __init__(self) -> None:
        self.parser = httptools.HttpResponseParser(self)
        self.transport: asyncio.Transport | None = None
        self.done: asyncio.Future[int] | None = None
        self.first_byte: float | None = None
        self.closed = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError as exc:
            if self.done is not None and not self.done.done():
                self.done.set_exception(ConnectionError(f"invalid HTTP: {exc}"))
            if self.transport is not None:
                self.transport.close()

    def on_body(self, body: bytes) -> None:
        if self.first_byte is None:
            self.first_byte = time.perf_counter()

    def on_message_complete(self) -> None:
        if self.done is not None and not self.done.done():
            self.done.set_result(self.parser.get_status_code())

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        if self.done is not None and not self.done.done():
            self.done.set_exception(ConnectionError("connection lost"))

    async def request(self, raw: bytes) -> tuple[int, float]:
        loop = asyncio.get_running_loop()
        self.done = loop.create_future()
        self.first_byte = None
        if self.closed:
            raise ConnectionError("connection closed")
        assert self.transport is not None
        self.transport.write(raw)
        status = await self.done
        return status, self.first_byte or time.perf_counter()


def build_request(url: str, path: str, body: bytes, key: str | None) -> tuple[str, int, bytes]:
    parts = urlsplit(url)
    host, port = parts.hostname or "127.0.0.1", parts.port or 80
    headers = [
        f"POST {parts.path.rstrip('/')}{path} HTTP/1.1",
        f"Host: {host}:{port}",
        "Content-Type: application/json",
        f"Content-Length: {len(body)}",
    ]
    if key:
        headers.append(f"Authorization: Bearer {key}")
    return host, port, ("\r\n".join(headers) + "\r\n\r\n").encode() + body


def pct(values: list[float], p: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(p / 100 * (len(ordered) - 1))))]


async def run(args: argparse.Namespace) -> dict[str, object]:
    body: dict[str, object] = {
        "model": args.model,
        "messages": [{"role": "user", "content": "Hello"}],
        "max_tokens": 16,
    }
    if args.stream:
        body["stream"] = True
    host, port, raw = build_request(
        args.url, args.path, json.dumps(body, separators=(",", ":")).encode(), args.key
    )
    loop = asyncio.get_running_loop()
    conns = []
    for _ in range(args.concurrency):
        _, proto = await loop.create_connection(ClientProtocol, host, port)
        conns.append(proto)

    latencies: list[float] = []
    ttfbs: list[float] = []
    statuses: dict[str, int] = {}
    errors = 0
    remaining = args.warmup
    deadline = time.monotonic() + args.max_seconds

    async def worker(conn: ClientProtocol, budget: list[int], record: bool) -> None:
        nonlocal errors
        while budget[0] > 0 and time.monotonic() < deadline:
            budget[0] -= 1
            started = time.perf_counter()
            try:
                status, first = await conn.request(raw)
            except ConnectionError:
                # Counted, then the worker carries on over a new connection.
                errors += 1
                try:
                    _, conn = await loop.create_connection(ClientProtocol, host, port)
                except OSError:
                    return
                conns.append(conn)
                continue
            ended = time.perf_counter()
            if record:
                latencies.append(ended - started)
                ttfbs.append(first - started)
                statuses[str(status)] = statuses.get(str(status), 0) + 1

    budget = [remaining]
    await asyncio.gather(*(worker(c, budget, False) for c in conns))
    budget = [args.requests]
    started = time.perf_counter()
    await asyncio.gather(*(worker(c, budget, True) for c in conns))
    elapsed = time.perf_counter() - started
    for c in conns:
        if c.transport is not None:
            c.transport.close()
    return {
        "requests": len(latencies),
        "errors": errors,
        "elapsed_s": elapsed,
        "rps": len(latencies) / elapsed if elapsed else 0.0,
        "p50_ms": pct(latencies, 50) * 1000,
        "p99_ms": pct(latencies, 99) * 1000,
        "ttfb_p50_ms": pct(ttfbs, 50) * 1000,
        "ttfb_p99_ms": pct(ttfbs, 99) * 1000,
        "statuses": statuses,
        "truncated": len(latencies) < args.requests,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--url", required=True, help="base URL, e.g. http://127.0.0.1:8000")
    parser.add_argument("--path", default="/v1/chat/completions")
    parser.add_argument("--model", default="chat")
    parser.add_argument("--key", default=None)
    parser.add_argument("--concurrency", type=int, default=1)
    parser.add_argument("--requests", type=int, default=1000)
    parser.add_argument("--warmup", type=int, default=100)
    parser.add_argument("--stream", action="store_true")
    parser.add_argument("--max-seconds", type=float, default=60.0)
    args = parser.parse_args()
    print(json.dumps(uvloop.run(run(args))))


if __name__ == "__main__":
    main()
