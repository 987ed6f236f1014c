"""A model server that talks: known lines at start, one line per call (for the logs tests).

At start it prints a line to stderr, then to stdout a line with a NUL byte, a line of 20,000
characters, and `boot 001` to `boot 250`; each `POST` prints `call <body>`. It answers
`GET /healthz`; requests are not logged, so those are all the lines its container writes.
"""

import os
import sys
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

PORT = int(os.environ.get("PORT", "8080"))


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, format, *args):
        pass

    def _reply(self, status, body=b"{}"):
        self.send_response(status)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self):
        self._reply(200 if self.path == "/healthz" else 404)

    def do_POST(self):
        length = int(self.headers.get("content-length") or 0)
        body = self.rfile.read(length).decode("utf-8", "replace")
        print(f"call {body}", flush=True)
        self._reply(200)


if __name__ == "__main__":
    print("to stderr", file=sys.stderr, flush=True)
    time.sleep(0.5)  # Docker orders the two streams by when it read them: keep them apart
    print("nul\x00byte", flush=True)
    print("x" * 20_000, flush=True)
    for number in range(1, 251):
        print(f"boot {number:03d}", flush=True)
    ThreadingHTTPServer(("0.0.0.0", PORT), Handler).serve_forever()
