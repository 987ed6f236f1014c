"""Serve the handler functions of an AI project over HTTP (standard library only).

The device agent mounts this file read-only into a model container and runs it with the project's
interpreter. It imports the manifest's main file from the project directory and exposes:

* ``POST /<handler>``: calls ``handler(payload)`` with the parsed JSON body (or the raw bytes when
  the input type is ``image``) and answers the return value as JSON;
* the health path (``GET``): 200 once the main file is imported;
* an exception in a handler: a 500 ``application/problem+json`` body carrying the message.

Configured by environment variables the agent sets: ``MODELYARD_MAIN``, ``MODELYARD_HANDLERS``
(comma separated), ``MODELYARD_INPUT_TYPE``, ``MODELYARD_HEALTH_PATH``, ``PORT`` and
``MODELYARD_PROJECT_DIR``. It must run on any Python 3.8+ the base image ships, without packages.
"""

from __future__ import annotations

import importlib.util
import json
import os
import sys
import traceback
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import ModuleType
from typing import Any

MAX_BODY_BYTES = int(os.environ.get("MODELYARD_MAX_BODY_BYTES", str(64 * 1024 * 1024)))


def load_main(project_dir: str, main: str) -> ModuleType:
    """Return the imported main module of the project."""
    sys.path.insert(0, project_dir)
    path = os.path.join(project_dir, main)
    spec = importlib.util.spec_from_file_location("modelyard_main", path)
    if spec is None or spec.loader is None:
        raise RuntimeError(f"cannot import {path}")
    module = importlib.util.module_from_spec(spec)
    sys.modules["modelyard_main"] = module
    spec.loader.exec_module(module)
    return module


def make_handler(
    module: ModuleType, handler_names: list[str], input_type: str, health_path: str
) -> type[BaseHTTPRequestHandler]:
    """Return the request handler class serving `module`'s handler functions."""
    functions: dict[str, Callable[[Any], Any]] = {}
    for name in handler_names:
        function = getattr(module, name, None)
        if not callable(function):
            raise RuntimeError(f"main file has no function named {name!r}")
        functions[name] = function

    class HandlerRequest(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        server_version = "modelyard-handlers/1"

        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - base signature
            sys.stderr.write(f"{self.address_string()} {format % args}\n")

        def _send(self, status: int, body: Any, content_type: str = "application/json") -> None:
            raw = json.dumps(body).encode("utf-8")
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(raw)))
            self.end_headers()
            self.wfile.write(raw)

        def _problem(self, status: int, title: str, detail: str) -> None:
            body = {"type": "about:blank", "title": title, "status": status, "detail": detail}
            self._send(status, body, "application/problem+json")

        def do_GET(self) -> None:
            path = self.path.split("?", 1)[0]
            if path == health_path:
                self._send(200, {"status": "ok", "handlers": sorted(functions)})
            else:
                self._problem(404, "Not Found", "No such path; handlers are POST /<name>.")

        def do_POST(self) -> None:
            name = self.path.split("?", 1)[0].strip("/")
            length = int(self.headers.get("Content-Length") or 0)
            if length > MAX_BODY_BYTES:
                self._problem(413, "Content Too Large", "The request body is too large.")
                self.close_connection = True
                return
            raw = self.rfile.read(length) if length else b""
            function = functions.get(name)
            if function is None:
                self._problem(404, "Not Found", f"No handler named {name!r}.")
                return
            payload: Any = raw
            if input_type != "image":
                try:
                    payload = json.loads(raw.decode("utf-8")) if raw else None
                except ValueError as exc:
                    self._problem(400, "Bad Request", f"The body is not valid JSON: {exc}")
                    return
            try:
                result = function(payload)
            except Exception as exc:  # any handler error becomes a problem body, never a crash
                traceback.print_exc()
                self._problem(500, "Handler Error", f"{type(exc).__name__}: {exc}")
                return
            try:
                json.dumps(result)
            except (TypeError, ValueError) as exc:
                self._problem(500, "Handler Error", f"The result is not JSON: {exc}")
                return
            self._send(200, result)

    return HandlerRequest


def main() -> None:
    """Import the project and serve its handlers until the container stops."""
    project_dir = os.environ.get("MODELYARD_PROJECT_DIR", os.getcwd())
    module = load_main(project_dir, os.environ.get("MODELYARD_MAIN", "main.py"))
    names = [n.strip() for n in os.environ.get("MODELYARD_HANDLERS", "").split(",") if n.strip()]
    request_class = make_handler(
        module,
        names,
        os.environ.get("MODELYARD_INPUT_TYPE", "json"),
        os.environ.get("MODELYARD_HEALTH_PATH", "/healthz"),
    )
    port = int(os.environ.get("PORT", "8080"))
    server = ThreadingHTTPServer(("0.0.0.0", port), request_class)  # noqa: S104 - in a container
    server.daemon_threads = True
    sys.stderr.write(f"modelyard handlers {names} serving on port {port}\n")
    sys.stderr.flush()
    server.serve_forever()


if __name__ == "__main__":
    main()
