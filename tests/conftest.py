"""Cross-service tests: the four services as separate processes, or the compose suite.

Both kinds need the real PostgreSQL, RabbitMQ and Docker engine that `make test` starts; none of
them is mocked. Helpers here run commands with asyncio subprocesses (never blocking the loop).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import sys
from collections.abc import Sequence
from pathlib import Path

import pytest

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
    def free_port() -> int:
        """Return a TCP port free on 127.0.0.1 right now."""
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
            probe.bind(("127.0.0.1", 0))
            port: int = probe.getsockname()[1]
            return port

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
        """Remove every container and image that carries all `labels` (`key=value`)."""
        filters = [arg for label in labels for arg in ("--filter", f"label={label}")]
        _, containers = await Commands.run_command("docker", "ps", "-aq", *filters)
        if containers.split():
            await Commands.run_command("docker", "rm", "-f", *containers.split(), check=False)
        _, images = await Commands.run_command("docker", "images", "-q", *filters)
        if images.split():
            await Commands.run_command("docker", "rmi", "-f", *set(images.split()), check=False)


@pytest.fixture(scope="session")
def commands() -> type[Commands]:
    """Return the subprocess helpers."""
    return Commands
