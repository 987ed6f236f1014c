"""nginx as tests and benchmarks start it: a private config under a work directory, no daemon.

Tests put nginx in front of service replicas, benchmarks use it as the yardstick a service is
measured against. Each writes only its `http` body; the skeleton (pid, logs, temporary paths in
the work directory, the worker's user when started as root) is the same for all.
"""

from __future__ import annotations

import os
import pwd
import shutil
from pathlib import Path


def nginx_binary() -> str | None:
    """Return nginx's path (Debian puts it in /usr/sbin, often not on PATH), or None."""
    found = shutil.which("nginx") or "/usr/sbin/nginx"
    return found if Path(found).exists() else None


def nginx_config(
    workdir: Path,
    http: str,
    *,
    worker_connections: int = 1024,
    access_log: bool = False,
    body_temp: Path | None = None,
) -> str:
    """Return a whole nginx config with `http` inside its `http` block.

    `body_temp`: where request bodies are spooled (default: in `workdir`). Started as root,
    nginx's worker would drop to `nobody` and could not write to the work directory: the
    config keeps the worker as the user who starts it.
    """
    user = f"user {pwd.getpwuid(os.geteuid()).pw_name};" if os.geteuid() == 0 else ""
    access = f"{workdir}/nginx-access.log" if access_log else "off"
    return f"""
{user}
daemon off;
worker_processes 1;
pid {workdir}/nginx.pid;
error_log {workdir}/nginx-error.log warn;
events {{ worker_connections {worker_connections}; }}
http {{
  access_log {access};
  client_body_temp_path {body_temp or workdir / "nginx-body"};
  proxy_temp_path {workdir}/nginx-proxy;
  fastcgi_temp_path {workdir}/nginx-fastcgi;
  uwsgi_temp_path {workdir}/nginx-uwsgi;
  scgi_temp_path {workdir}/nginx-scgi;
{http}
}}
"""
