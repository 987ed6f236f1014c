"""The shared `serve` / `migrate` commands of the services (`modelyard` is in modelyard-client)."""

from __future__ import annotations

import argparse
from collections.abc import Callable, Sequence


def service_main(
    *,
    prog: str,
    app_path: str,
    default_port: int,
    migrate: Callable[[], None] | None,
    argv: Sequence[str] | None = None,
) -> None:
    """Run a service's CLI: `serve [--host] [--port] [--workers]` and `migrate`."""
    import uvicorn

    parser = argparse.ArgumentParser(prog=prog)
    sub = parser.add_subparsers(dest="command", required=True)
    serve = sub.add_parser("serve", help="run the HTTP service")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=default_port)
    serve.add_argument("--workers", type=int, default=1)
    serve.add_argument(
        "--proxy-headers",
        action="store_true",
        help="trust X-Forwarded-* from the proxy in front (off: it costs time on every request)",
    )
    if migrate is not None:
        sub.add_parser("migrate", help="apply database migrations (alembic upgrade head)")
    args = parser.parse_args(argv)
    if args.command == "migrate" and migrate is not None:
        migrate()
    elif args.command == "serve":
        uvicorn.run(
            app_path,
            factory=True,
            host=args.host,
            port=args.port,
            workers=args.workers,
            log_config=None,
            access_log=False,
            proxy_headers=args.proxy_headers,
        )
