"""A loopback OTLP/HTTP sink for the benchmark: answers every export 200, keeps only counts.

`POST /v1/traces` and `/v1/metrics` are read to their end and acknowledged (an empty protobuf
answer is a valid `Export*ServiceResponse`); `GET /stats` answers what arrived, as JSON:
`{"traces": [requests, bytes], "metrics": [requests, bytes]}`.
"""

from __future__ import annotations

import argparse
import asyncio
import json

import httptools
import uvloop

COUNTS: dict[str, list[int]] = {"traces": [0, 0], "metrics": [0, 0]}
ACK = b"HTTP/1.1 200 OK\r\nContent-Type: application/x-protobuf\r\nContent-Length: 0\r\n\r\n"


class SinkProtocol(asyncio.Protocol):
    """One keep-alive connection of an exporter."""

    def __init__(self) -> None:
        self.parser = httptools.HttpRequestParser(self)
        self.url = b""
        self.size = 0
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError:
            assert self.transport is not None
            self.transport.close()

    def on_url(self, url: bytes) -> None:
        self.url += url

    def on_body(self, body: bytes) -> None:
        self.size += len(body)

    def on_message_complete(self) -> None:
        url, size = self.url, self.size
        self.url, self.size = b"", 0
        assert self.transport is not None
        if url == b"/stats":
            body = json.dumps(COUNTS).encode()
            head = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
            head += b"Content-Length: %d\r\n\r\n"
            self.transport.write(head % len(body) + body)
            return
        signal = "traces" if url.endswith(b"/traces") else "metrics"
        COUNTS[signal][0] += 1
        COUNTS[signal][1] += size
        self.transport.write(ACK)


async def serve(port: int) -> None:
    loop = asyncio.get_running_loop()
    server = await loop.create_server(SinkProtocol, "127.0.0.1", port)
    async with server:
        await server.serve_forever()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    uvloop.run(serve(args.port))


if __name__ == "__main__":
    main()
