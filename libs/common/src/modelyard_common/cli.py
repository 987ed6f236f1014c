"""The shared `serve` / `migrate` commands of the services (`modelyard` is in modelyard-client)."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence

from modelyard_common.settings import ConfigurationError, ProcessSettings, ServiceSettings


def service_main(
    *,
    prog: str,
    app_path: str,
    default_port: int,
    migrate: Callable[[], None] | None,
    argv: Sequence[str] | None = None,
    settings: Callable[[], ProcessSettings] = ServiceSettings,
    commands: dict[str, tuple[str, Callable[[], None]]] | None = None,
) -> None:
    """Run a service's CLI: `serve [--host] [--port] [--workers]` and `migrate`.

    `serve` refuses to start (one line on stderr, exit 2) when the settings are not fit for
    MODELYARD_ENV (prod without its own secrets). `commands` adds a service's own commands
    (name: (help, run)).
    """
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
    for name, (help_text, _) in (commands or {}).items():
        sub.add_parser(name, help=help_text)
    args = parser.parse_args(argv)
    if args.command in (commands or {}):
        (commands or {})[args.command][1]()
    elif args.command == "migrate" and migrate is not None:
        migrate()
    elif args.command == "serve":
        exit_unless_startable(prog, settings)
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


def exit_unless_startable(prog: str, settings: Callable[[], ProcessSettings]) -> None:
    """Exit with one line on stderr if the settings must not be started with."""
    try:
        settings().ensure_startable()
    except ConfigurationError as exc:
        print(f"{prog}: refusing to start: {exc}", file=sys.stderr)
        raise SystemExit(2) from None
    except ValueError as exc:  # pydantic's ValidationError: a malformed variable
        first = str(exc).splitlines()
        print(
            f"{prog}: refusing to start: invalid settings: {' '.join(first[:3])}", file=sys.stderr
        )
        raise SystemExit(2) from None
