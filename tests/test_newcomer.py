"""What a newcomer meets first: `make up` from nothing, `serve` on a taken port, `/docs` offline.

* `scripts/compose.sh` finds no compose (neither `docker compose` nor `docker-compose` works on
  PATH): it installs Debian's docker-compose with apt-get and goes on with it, where it used to
  stop at "neither ... is installed" before even trying.
* Every service's `serve` on a port something else listens on exits 1 at once with one line
  naming the address, instead of logging `[Errno 98]` and staying alive serving nothing.
* `/docs` and `/redoc` of every service load their scripts, styles and favicon from the service
  itself, so they work on a network without the internet (they loaded them from a CDN).
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI

from modelyard_testkit.testing import TEST_AMQP_URL, free_port

REPO = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent


# --- make up from nothing -------------------------------------------------------------------


def _shadow(directory: Path, name: str, script: str) -> None:
    path = directory / name
    path.write_text("#!/bin/sh\n" + script)
    path.chmod(0o755)


@pytest.mark.docker
@pytest.mark.skipif(os.geteuid() != 0, reason="installs with apt-get, as root")
def test_compose_sh_installs_compose_when_none_works(tmp_path: Path) -> None:
    """No compose on PATH: the script installs Debian's docker-compose and uses it.

    Nothing is uninstalled: a directory in front of PATH shadows `docker-compose` with a command
    that is not found (exit 127) and `docker compose` with one that fails, as on a machine with
    neither. apt-get then really runs (`install -y docker-compose`: a no-op where the package is
    installed, which the machine's own /usr/bin/docker-compose may be), and the script finds the
    installed command where Debian puts it.
    """
    docker = shutil.which("docker")
    assert docker is not None, "the Docker CLI is missing"
    shims = tmp_path / "shims"
    shims.mkdir()
    _shadow(shims, "docker-compose", 'echo "docker-compose: not found" >&2\nexit 127\n')
    _shadow(
        shims,
        "docker",
        'if [ "$1" = compose ]; then\n'
        '  echo "docker: unknown command: docker compose" >&2; exit 1\n'
        "fi\n"
        f'exec {docker} "$@"\n',
    )
    env = {**os.environ, "PATH": f"{shims}:{os.environ['PATH']}"}
    started = time.monotonic()
    done = subprocess.run(
        ["bash", "scripts/compose.sh", "tools"],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    elapsed = time.monotonic() - started
    assert done.returncode == 0, f"exit {done.returncode}:\n{done.stdout}\n{done.stderr}"
    lines = done.stderr.splitlines()
    assert any("installing docker-compose (apt-get)" in line for line in lines), done.stderr
    assert any(re.fullmatch(r"compose:\s+done in \d+s", line) for line in lines), done.stderr
    assert "compose: using /usr/bin/docker-compose (" in done.stderr, done.stderr
    assert "neither 'docker compose' nor 'docker-compose' is installed" not in done.stderr
    # Each line is the script's own, short: no apt-get chatter on a working install.
    assert all(line.startswith("compose: ") for line in lines), done.stderr
    assert elapsed < 600


def test_compose_sh_stops_on_an_unknown_command() -> None:
    done = subprocess.run(
        ["bash", "scripts/compose.sh", "nonsense"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 2
    assert "tools | prepare" in done.stderr


# --- serve on a taken port ------------------------------------------------------------------

SERVICES = ["modelyard-registry", "modelyard-deployer", "modelyard-gateway", "modelyard-agent"]


@pytest.mark.parametrize("command", SERVICES)
def test_serve_on_a_taken_port_exits_with_one_line(command: str, tmp_path: Path) -> None:
    env = {key: value for key, value in os.environ.items() if not key.startswith("MODELYARD_")}
    env.update(
        MODELYARD_ENV="dev",
        MODELYARD_AMQP_URL=TEST_AMQP_URL,
        MODELYARD_AGENT_DATA_DIR=str(tmp_path / "agent"),
        MODELYARD_AGENT_INGRESS_PORT="0",
    )
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        started = time.monotonic()
        try:
            done = subprocess.run(
                [str(BIN / command), "serve", "--port", str(port)],
                env=env,
                capture_output=True,
                text=True,
                timeout=30,
                check=False,
            )
        except subprocess.TimeoutExpired as exc:
            pytest.fail(f"{command} kept running on a taken port:\n{exc.stderr!r}")
    assert done.returncode == 1, done.stderr
    lines = done.stderr.strip().splitlines()
    assert lines == [
        f"{command}: cannot listen on 127.0.0.1:{port}: address already in use "
        "(another process listens there: stop it or pick another --port)"
    ], done.stderr
    assert time.monotonic() - started < 30


def test_agent_serve_on_a_taken_ingress_port_exits_with_one_line(tmp_path: Path) -> None:
    env = {key: value for key, value in os.environ.items() if not key.startswith("MODELYARD_")}
    port = free_port()
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        ingress = taken.getsockname()[1]
        env.update(
            MODELYARD_ENV="dev",
            MODELYARD_AMQP_URL=TEST_AMQP_URL,
            MODELYARD_AGENT_DATA_DIR=str(tmp_path / "agent"),
            MODELYARD_AGENT_INGRESS_PORT=str(ingress),
        )
        try:
            done = subprocess.run(
                [str(BIN / "modelyard-agent"), "serve", "--port", str(port)],
                env=env,
                capture_output=True,
                text=True,
                timeout=30,
                check=False,
            )
        except subprocess.TimeoutExpired as exc:
            pytest.fail(f"the agent kept running on a taken ingress port:\n{exc.stderr!r}")
    assert done.returncode == 1, done.stderr
    assert done.stderr.strip().splitlines() == [
        f"modelyard-agent: cannot listen on 127.0.0.1:{ingress}: address already in use "
        "(another process listens there: stop it or set MODELYARD_AGENT_INGRESS_PORT)"
    ], done.stderr


def test_serve_on_a_taken_metrics_port_exits_with_one_line() -> None:
    env = {key: value for key, value in os.environ.items() if not key.startswith("MODELYARD_")}
    port = free_port()
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        metrics = taken.getsockname()[1]
        env.update(MODELYARD_ENV="dev", MODELYARD_METRICS_PORT=str(metrics))
        try:
            done = subprocess.run(
                [str(BIN / "modelyard-registry"), "serve", "--port", str(port)],
                env=env,
                capture_output=True,
                text=True,
                timeout=30,
                check=False,
            )
        except subprocess.TimeoutExpired as exc:
            pytest.fail(f"the registry kept running on a taken metrics port:\n{exc.stderr!r}")
    assert done.returncode == 1, done.stderr
    assert done.stderr.strip().splitlines() == [
        f"modelyard-registry: cannot listen on 127.0.0.1:{metrics}: address already in use "
        "(another process listens there: stop it or set MODELYARD_METRICS_PORT)"
    ], done.stderr


# --- /docs and /redoc without the internet --------------------------------------------------


@contextlib.asynccontextmanager
async def _registry(_: Path) -> AsyncIterator[FastAPI]:
    from modelyard_registry.app import create_app

    yield create_app()


@contextlib.asynccontextmanager
async def _deployer(tmp_path: Path) -> AsyncIterator[FastAPI]:
    from modelyard_deployer.app import create_app
    from modelyard_deployer.settings import DeployerSettings

    yield create_app(DeployerSettings(artifact_dir=tmp_path / "artifacts"))


@contextlib.asynccontextmanager
async def _gateway(_: Path) -> AsyncIterator[FastAPI]:
    from modelyard_gateway.app import create_app

    yield create_app()


@contextlib.asynccontextmanager
async def _agent(tmp_path: Path) -> AsyncIterator[FastAPI]:
    from modelyard_agent.app import Agent, create_app
    from modelyard_agent.settings import AgentSettings

    agent = Agent(AgentSettings(data_dir=tmp_path / "agent"))
    try:
        yield create_app(agent)
    finally:
        await agent.stop()  # never started: this closes its HTTP clients and executor


# Each app as its factory makes it, without its lifespan: the docs need no database or broker.
APPS: dict[str, Callable[[Path], contextlib.AbstractAsyncContextManager[FastAPI]]] = {
    "registry": _registry,
    "deployer": _deployer,
    "gateway": _gateway,
    "agent": _agent,
}
ASSET = re.compile(r"""(?:src|href|spec-url)=["']([^"']+)["']|url: ?'([^']+)'""")
CONTENT_TYPES = {
    ".js": "text/javascript",
    ".css": "text/css",
    ".png": "image/png",
    ".json": "application/json",
}


@pytest.mark.parametrize("service", list(APPS))
async def test_docs_load_nothing_from_another_origin(service: str, tmp_path: Path) -> None:
    async with APPS[service](tmp_path) as app:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://service") as client:
            for page in ("/docs", "/redoc"):
                response = await client.get(page)
                assert response.status_code == 200, page
                html = response.text
                assert "http://" not in html, f"{page}:\n{html}"
                assert "https://" not in html, f"{page}:\n{html}"
                urls = {a or b for a, b in ASSET.findall(html)}
                assert any(url.endswith(".js") for url in urls), f"{page} loads no script"
                for url in sorted(urls):
                    assert url.startswith("/"), (page, url)
                    assert not url.startswith("//"), (page, url)
                    asset = await client.get(url)
                    assert asset.status_code == 200, (page, url)
                    expected = CONTENT_TYPES[Path(url).suffix]
                    assert asset.headers["content-type"].startswith(expected), (url, asset.headers)
                    assert len(asset.content) > 100, url
