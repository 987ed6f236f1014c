"""A loopback OTLP/HTTP sink for the benchmark: answers every export 200, keeps only counts.

`POST /v1/traces` and `/v1/metrics` are read to their end and acknowledged (an empty protobuf
answer is a valid `Export*ServiceResponse`); `GET /stats` answers what arrived, as JSON:
`{"traces": [requests, bytes], "metrics": [requests, bytes]}`.
"""

from __future__ import annotations

import asyncio
import json

from backend import HttpProtocol, main

COUNTS: dict[str, list[int]] = {"traces": [0, 0], "metrics": [0, 0]}
ACK = b"HTTP/1.1 200 OK\r\nContent-Type: application/x-protobuf\r\nContent-Length: 0\r\n\r\n"


class SinkProtocol(HttpProtocol):
    """One keep-alive connection of an exporter."""

    def answer(self, transport: asyncio.Transport, url: bytes, body: bytes) -> None:
        if url == b"/stats":
            stats = json.dumps(COUNTS).encode()
            head = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
            head += b"Content-Length: %d\r\n\r\n"
            transport.write(head % len(stats) + stats)
            return
        signal = "traces" if url.endswith(b"/traces") else "metrics"
        COUNTS[signal][0] += 1
        COUNTS[signal][1] += len(body)
        transport.write(ACK)


if __name__ == "__main__":
    main(SinkProtocol, __doc__)
