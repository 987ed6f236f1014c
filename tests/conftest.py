"""Cross-service tests: the four services as separate processes, or the compose suite.

Both kinds need the real PostgreSQL, RabbitMQ and Docker engine that `make test` starts; none of
them is mocked. Helpers here run commands with asyncio subprocesses (never blocking the loop).
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import os
import shutil
import signal
import sys
import zipfile
from collections.abc import AsyncIterator, Sequence
from pathlib import Path

import pytest

from modelyard_testkit.servers import free_port

REPO = Path(__file__).resolve().parent.parent
# The helper modules beside this file (suite_testkit) are imported by name.
sys.path.insert(0, str(Path(__file__).parent))


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "compose: builds the compose images and runs the suite with compose"
    )
    config.addinivalue_line(
        "markers", "end_to_end: runs the four services as processes and walks the whole story"
    )


class Commands:
    """Subprocess helpers for tests, all asyncio (no blocking call on the event loop)."""

    repo = REPO

    @staticmethod
    def project_zip(name: str) -> bytes:
        """Return the zip of a project under tests/projects."""
        projects = REPO / "tests" / "projects"
        buffer = io.BytesIO()
        with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
            for path in sorted((projects / name).rglob("*")):
                if path.is_file() and "__pycache__" not in path.parts:
                    archive.write(path, path.relative_to(projects / name).as_posix())
        return buffer.getvalue()

    free_port = staticmethod(free_port)

    @staticmethod
    async def run_command(
        *argv: str,
        env: dict[str, str] | None = None,
        timeout: float = 120,
        check: bool = True,
    ) -> tuple[int, str]:
        """Run a command to completion; return (exit code, combined output)."""
        process = await asyncio.create_subprocess_exec(
            *argv,
            cwd=REPO,
            env={**os.environ, **(env or {})},
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
            start_new_session=True,
        )
        try:
            output, _ = await asyncio.wait_for(process.communicate(), timeout)
        except TimeoutError:
            await Commands.stop_process(process)
            raise
        text = output.decode("utf-8", "replace")
        if check and process.returncode != 0:
            raise AssertionError(f"{' '.join(argv)} exited {process.returncode}:\n{text[-6000:]}")
        return process.returncode or 0, text

    @staticmethod
    async def stop_process(process: asyncio.subprocess.Process, grace: float = 15) -> None:
        """Stop a process and its group (SIGTERM, SIGKILL after `grace` seconds); reap it.

        Processes started here lead a session of their own, so the whole group is signalled:
        a shell's children (docker-compose, uvicorn) stop with it.
        """
        if process.returncode is not None:
            return
        try:
            os.killpg(process.pid, signal.SIGTERM)
            await asyncio.wait_for(process.wait(), grace)
        except ProcessLookupError:
            return
        except TimeoutError:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            await process.wait()

    @staticmethod
    async def docker_remove_labelled(labels: Sequence[str]) -> None:
        """Remove every container, image and network that carries all `labels` (`key=value`)."""
        filters = [arg for label in labels for arg in ("--filter", f"label={label}")]
        _, containers = await Commands.run_command("docker", "ps", "-aq", *filters)
        if containers.split():
            await Commands.run_command("docker", "rm", "-f", *containers.split(), check=False)
        _, images = await Commands.run_command("docker", "images", "-q", *filters)
        if images.split():
            await Commands.run_command("docker", "rmi", "-f", *set(images.split()), check=False)
        _, networks = await Commands.run_command("docker", "network", "ls", "-q", *filters)
        if networks.split():
            await Commands.run_command("docker", "network", "rm", *networks.split(), check=False)


@pytest.fixture(scope="session")
def commands() -> type[Commands]:
    """Return the subprocess helpers."""
    return Commands


# A cold machine builds three stand-in images and four service images first (about 6 minutes
# measured); with Docker's layer cache `up` takes about 2 minutes.
COMPOSE_UP_TIMEOUT_S = 1500


class ComposeSuite:
    """The compose suite of this test session: its project, environment and published URLs."""

    def __init__(self, commands: type[Commands], project: str) -> None:
        self.commands = commands
        self.project = project
        # Not under pytest's tmp_path: the agent's non-root user must reach it, and pytest's
        # base directory is private to root.
        self.data_dir = Path("/tmp") / project
        ports = {
            name: str(commands.free_port())
            for name in (
                "POSTGRES",
                "RABBITMQ",
                "REGISTRY",
                "DEPLOYER",
                "GATEWAY",
                "AGENT",
                "AGENT_INGRESS",  # the agent's host-network ingress: never the fixed 8004
                "CONSOLE",
            )
        }
        self.env = {
            "MODELYARD_COMPOSE_PROJECT": project,
            "MODELYARD_AGENT_DATA_DIR": str(self.data_dir),
            "MODELYARD_BIND": "127.0.0.1",
            "MODELYARD_WORKSPACE": "default",
            **{f"MODELYARD_{name}_PORT": port for name, port in ports.items()},
        }
        self.urls = {
            service: f"http://127.0.0.1:{ports[service.upper()]}"
            for service in ("registry", "deployer", "gateway", "agent")
        }
        self.up_output = ""

    async def script(self, *args: str, timeout: float = 300) -> tuple[int, str]:
        """Run `scripts/compose.sh ARGS` for this project; return (exit code, output)."""
        return await self.commands.run_command(
            "bash", "scripts/compose.sh", *args, env=self.env, timeout=timeout, check=False
        )


@pytest.fixture(scope="session")
async def compose_suite(commands: type[Commands]) -> AsyncIterator[ComposeSuite]:
    """Return the compose suite, up once for the session (smoke and README tests share it).

    Its own project on free ports, so it never touches a suite a person has running; `down -v`
    at the end, and no container of the project may be left behind.
    """
    import uuid

    suite = ComposeSuite(commands, f"modelyard-test-{uuid.uuid4().hex[:8]}")
    try:
        code, output = await suite.script("up", timeout=COMPOSE_UP_TIMEOUT_S)
        verdict = "\n".join(line for line in output.splitlines() if line.startswith("compose:"))
        assert code == 0, f"make up failed:\n{verdict}\n...\n{output[-6000:]}"
        assert "modelyard is up" in output
        suite.up_output = output
        yield suite
    finally:
        await suite.script("down", "-v", timeout=300)
        await asyncio.to_thread(shutil.rmtree, suite.data_dir, ignore_errors=True)
    _, leftovers = await commands.run_command(
        "docker", "ps", "-aq", "--filter", f"label=com.docker.compose.project={suite.project}"
    )
    assert leftovers.split() == [], "compose.sh left containers behind"
