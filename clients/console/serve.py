"""Serve the built console (dist/) and its /config.json, made from the environment.

The console's container runs this (Python's standard library only, so it builds from the same
local base image as the services); tests/test_console.py runs it too. The configuration uses
the services' own variables, so the console offers what the services accept:

    MODELYARD_ENV=dev                 a development sign-in (HS256 tokens) is offered
    MODELYARD_OIDC_ISSUER, MODELYARD_OIDC_AUDIENCE, MODELYARD_CONSOLE_OIDC_CLIENT_ID
                                      sign-in with the organisation's OpenID issuer (PKCE)
    MODELYARD_CONSOLE_REGISTRY_URL, _DEPLOYER_URL, _GATEWAY_URL
                                      the services' URLs as the browser reaches them

Usage: python3 serve.py [--host H] [--port P] [--root DIR]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
from functools import partial
from http import HTTPStatus
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any


def console_config(env: dict[str, str]) -> dict[str, Any]:
    """Return the console's configuration from environment variables."""
    issuer = env.get("MODELYARD_OIDC_ISSUER")
    return {
        "registry_url": env.get("MODELYARD_CONSOLE_REGISTRY_URL", "http://127.0.0.1:8001"),
        "deployer_url": env.get("MODELYARD_CONSOLE_DEPLOYER_URL", "http://127.0.0.1:8002"),
        "gateway_url": env.get("MODELYARD_CONSOLE_GATEWAY_URL", "http://127.0.0.1:8000"),
        "dev_sign_in": env.get("MODELYARD_ENV", "prod") == "dev",
        "oidc": (
            {
                "issuer": issuer,
                "client_id": env.get("MODELYARD_CONSOLE_OIDC_CLIENT_ID", "modelyard-console"),
                "audience": env.get("MODELYARD_OIDC_AUDIENCE", ""),
                "scope": env.get("MODELYARD_CONSOLE_OIDC_SCOPE", "openid"),
            }
            if issuer
            else None
        ),
        "workspaces_claim": env.get("MODELYARD_OIDC_WORKSPACES_CLAIM", "workspaces"),
        "roles_claim": env.get("MODELYARD_OIDC_ROLES_CLAIM", "roles"),
        "role_prefix": env.get("MODELYARD_OIDC_ROLE_PREFIX", ""),
    }


class ConsoleHandler(SimpleHTTPRequestHandler):
    """Static files, /config.json from the environment, headers a console page should carry."""

    config_body = b"{}"

    def end_headers(self) -> None:
        self.send_header("X-Content-Type-Options", "nosniff")
        self.send_header("Referrer-Policy", "no-referrer")  # sign-in codes stay in this page
        self.send_header("X-Frame-Options", "DENY")
        path = self.path.split("?", 1)[0]
        immutable = path.startswith("/assets/")
        self.send_header(
            "Cache-Control", "public, max-age=31536000, immutable" if immutable else "no-cache"
        )
        super().end_headers()

    def do_GET(self) -> None:
        if self.path.split("?", 1)[0] == "/config.json":
            self.send_response(HTTPStatus.OK)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(self.config_body)))
            self.end_headers()
            self.wfile.write(self.config_body)
            return
        if self.path.split("?", 1)[0] == "/healthz":
            self.send_response(HTTPStatus.OK)
            self.send_header("Content-Length", "2")
            self.end_headers()
            self.wfile.write(b"ok")
            return
        super().do_GET()

    def log_message(self, format: str, *args: Any) -> None:
        if os.environ.get("MODELYARD_CONSOLE_ACCESS_LOG") == "true":
            super().log_message(format, *args)


def main(argv: list[str] | None = None) -> int:
    """Serve until interrupted; return the exit code."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--host", default=os.environ.get("MODELYARD_CONSOLE_HOST", "0.0.0.0"))
    parser.add_argument(
        "--port", type=int, default=int(os.environ.get("MODELYARD_CONSOLE_PORT", "8080"))
    )
    parser.add_argument("--root", default=str(Path(__file__).parent / "dist"))
    args = parser.parse_args(argv)
    root = Path(args.root)
    if not (root / "index.html").is_file():
        print(f"serve.py: no built console in {root} (run `npm run build`)", file=sys.stderr)
        return 1
    handler = type(
        "Handler",
        (ConsoleHandler,),
        {"config_body": json.dumps(console_config(dict(os.environ))).encode()},
    )
    try:
        server = ThreadingHTTPServer((args.host, args.port), partial(handler, directory=str(root)))
    except OSError as exc:
        print(
            f"serve.py: cannot listen on {args.host}:{args.port}: {exc.strerror}", file=sys.stderr
        )
        return 1
    print(f"ready http://{args.host}:{server.server_address[1]}", flush=True)
    with contextlib.suppress(KeyboardInterrupt):
        server.serve_forever()
    return 0


if __name__ == "__main__":
    sys.exit(main())
