"""The shared `serve` / `migrate` commands of the services (`modelyard` is in modelyard-client)."""

from __future__ import annotations

import argparse
import errno
import logging
import socket
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

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
    also_listens: Callable[[], Sequence[Listener]] | None = None,
) -> None:
    """Run a service's CLI: `serve [--host] [--port] [--workers]` and `migrate`.

    `serve` refuses to start (one line on stderr, exit 2) when the settings are not fit for
    MODELYARD_ENV (prod without its own secrets), and stops (one line, exit 1) when it cannot
    listen on its address, or on one of the other addresses `also_listens` names (the app binds
    those itself once it runs). `commands` adds a service's own commands (name: (help, run)).
    """
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
        listeners = list(also_listens() if also_listens is not None else ())
        metrics_port = settings().metrics_port
        if metrics_port is not None:
            listeners.append(
                Listener(settings().metrics_host, metrics_port, "MODELYARD_METRICS_PORT")
            )
        serve_app(
            prog,
            app_path,
            host=args.host,
            port=args.port,
            workers=args.workers,
            proxy_headers=args.proxy_headers,
            also_listens=listeners,
        )


@dataclass(frozen=True)
class Listener:
    """Another address a service listens on, and the setting that moves it."""

    host: str
    port: int  # 0: any free port, never taken
    setting: str


def serve_app(
    prog: str,
    app_path: str,
    *,
    host: str,
    port: int,
    workers: int,
    proxy_headers: bool,
    also_listens: Sequence[Listener] = (),
) -> None:
    """Serve the app factory at `app_path` on host:port with uvicorn.

    The socket is bound before the app starts: when the address is taken, the command says so in
    one line and exits 1 (uvicorn alone logs the error and may then hang in the app's shutdown,
    alive but serving nothing). The addresses in `also_listens` are tried (and let go) first.
    """
    import uvicorn

    sock = listen_socket(prog, host, port)
    for other in also_listens:
        if other.port:
            listen_socket(prog, other.host, other.port, fix=f"set {other.setting}").close()
    options: dict[str, Any] = {
        "factory": True,
        "host": host,
        "port": port,
        "workers": workers,
        "log_config": None,
        "access_log": False,
        "proxy_headers": proxy_headers,
    }
    if workers > 1:
        # Each worker listens on its own socket (SO_REUSEPORT): the kernel spreads connections
        # over them evenly. One socket shared by every worker (uvicorn's supervisor) leaves
        # them to whichever accepts first, and long-lived connections piled up on one worker.
        sock.close()
        del options["workers"]
        from modelyard_common.workers import Supervisor

        Supervisor(prog, app_path, host=host, port=port, count=workers, options=options).run()
        return
    logging.getLogger("modelyard.serve").info("%s listening on %s:%d", prog, host, port)
    server = uvicorn.Server(uvicorn.Config(app_path, **options))
    server.run(sockets=[sock])
    if not server.started:
        raise SystemExit(1)


def listen_socket(
    prog: str, host: str, port: int, *, fix: str = "pick another --port"
) -> socket.socket:
    """Return a TCP socket bound to host:port, or exit 1 with one line saying why it cannot be."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        reason = (exc.strerror or str(exc)).lower()
        hint = f" (another process listens there: stop it or {fix})"
        print(
            f"{prog}: cannot listen on {host}:{port}: {reason}"
            f"{hint if exc.errno == errno.EADDRINUSE else ''}",
            file=sys.stderr,
        )
        raise SystemExit(1) from None
    return sock


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
