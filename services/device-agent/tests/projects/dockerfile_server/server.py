"""A project that brings its own HTTP server (protocol: openai), built from its Dockerfile."""

import json
import os
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


class Server(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def _send(self, status: int, body: Any) -> None:
        raw = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(raw)))
        self.end_headers()
        self.wfile.write(raw)

    def do_GET(self) -> None:
        if self.path == "/healthz":
            self._send(200, {"status": "ok"})
        else:
            self._send(404, {"error": "not found"})

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = json.loads(self.rfile.read(length) or b"null")
        if self.path == "/v1/chat/completions":
            text = body["messages"][-1]["content"]
            self._send(
                200,
                {
                    "object": "chat.completion",
                    "choices": [
                        {"index": 0, "message": {"role": "assistant", "content": text.upper()}}
                    ],
                    "greeting": os.environ.get("GREETING"),
                },
            )
        else:
            self._send(404, {"error": "not found"})


ThreadingHTTPServer(("0.0.0.0", int(os.environ.get("PORT", "8080"))), Server).serve_forever()
