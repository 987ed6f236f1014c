"""A fast fake OpenAI backend for the benchmark (uvloop + httptools, canned answers).

`/hang/...` never answers (to time failover on a hung instance); `stream: true` answers five SSE
chunks and `[DONE]`; anything else answers one chat completion.
"""

from __future__ import annotations

import argparse
import asyncio
import json

import httptools
import uvloop

COMPLETION = json.dumps(
    {
        "id": "chatcmpl-bench",
        "object": "chat.completion",
        "created": 1700000000,
        "model": "bench-model",
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": "Hello! How can I help you today?"},
                "finish_reason": "stop",
            }
        ],
        "usage": {"prompt_tokens": 9, "completion_tokens": 9, "total_tokens": 18},
    }
).encode()
MODELS = (
    b'{"object":"list","data":[{"id":"bench-model","object":"model","created":0,"owned_by":"x"}]}'
)


def _chunk(content: str | None, finish: str | None) -> bytes:
    delta = {"content": content} if content is not None else {}
    event = {
        "id": "chatcmpl-bench",
        "object": "chat.completion.chunk",
        "created": 1700000000,
        "model": "bench-model",
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
    }
    data = b"data: " + json.dumps(event).encode() + b"\n\n"
    return b"%x\r\n%s\r\n" % (len(data), data)


STREAM = (
    b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n"
    + b"".join(_chunk(w, None) for w in ["Hello", "!", " How", " can", " I"])
    + _chunk(None, "stop")
    + b"e\r\ndata: [DONE]\n\n\r\n0\r\n\r\n"
)


def _json_response(body: bytes) -> bytes:
    return b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s" % (
        len(body),
        body,
    )


CHAT = _json_response(COMPLETION)
MODELS_RESPONSE = _json_response(MODELS)


class HttpProtocol(asyncio.Protocol):
    """One keep-alive connection: requests parsed with httptools, each answered by `answer`."""

    def __init__(self) -> None:
        self.parser = httptools.HttpRequestParser(self)
        self.url = b""
        self.body: list[bytes] = []
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
        self.body.append(body)

    def on_message_complete(self) -> None:
        url, body = self.url, b"".join(self.body)
        self.url, self.body = b"", []
        assert self.transport is not None
        self.answer(self.transport, url, body)

    def answer(self, transport: asyncio.Transport, url: bytes, body: bytes) -> None:
        """Write the answer to one request."""
        raise NotImplementedError


class BackendProtocol(HttpProtocol):
    """One keep-alive connection to the fake backend."""

    def answer(self, transport: asyncio.Transport, url: bytes, body: bytes) -> None:
        if url.startswith(b"/hang"):
            return
        if url.endswith(b"/models"):
            transport.write(MODELS_RESPONSE)
        elif b'"stream":true' in body or b'"stream": true' in body:
            transport.write(STREAM)
        else:
            transport.write(CHAT)


async def serve(port: int, protocol: type[HttpProtocol] = BackendProtocol) -> None:
    """Serve `protocol` on 127.0.0.1:port until cancelled."""
    loop = asyncio.get_running_loop()
    server = await loop.create_server(protocol, "127.0.0.1", port, backlog=4096)
    async with server:
        await server.serve_forever()


def main(protocol: type[HttpProtocol] = BackendProtocol, doc: str | None = __doc__) -> None:
    """Parse `--port` and serve `protocol` there."""
    parser = argparse.ArgumentParser(description=doc)
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    uvloop.run(serve(args.port, protocol))


if __name__ == "__main__":
    main()
