"""`make up` works: the compose suite builds, starts healthy and answers the smoke story.

Runs `scripts/compose.sh smoke` (stand-in base images where no registry is reachable, the four
service images, every healthcheck, the story in tests/smoke_story.py, then `down -v`) as its own
compose project on free ports, so it never touches a suite a person has running.
"""

from __future__ import annotations

import asyncio
import shutil
import uuid
from pathlib import Path

import pytest

pytestmark = [pytest.mark.docker, pytest.mark.compose]

# A cold machine builds three stand-in images and four service images first (about 6 minutes
# measured); with Docker's layer cache a run takes about 2 minutes.
SMOKE_TIMEOUT_S = 1500


@pytest.mark.timeout(SMOKE_TIMEOUT_S + 120)
async def test_compose_suite_comes_up_and_serves_a_deployed_model(commands) -> None:
    project = f"modelyard-smoke-{uuid.uuid4().hex[:8]}"
    # Not under pytest's tmp_path: the agent's non-root user must reach it, and pytest's base
    # directory is private to root.
    data_dir = Path("/tmp") / project
    env = {
        "MODELYARD_COMPOSE_PROJECT": project,
        "MODELYARD_AGENT_DATA_DIR": str(data_dir),
        "MODELYARD_BIND": "127.0.0.1",
        "MODELYARD_WORKSPACE": "smoke",
        **{
            f"MODELYARD_{name}_PORT": str(commands.free_port())
            for name in ("POSTGRES", "RABBITMQ", "REGISTRY", "DEPLOYER", "GATEWAY", "AGENT")
        },
    }
    try:
        code, output = await commands.run_command(
            "bash", "scripts/compose.sh", "smoke", env=env, timeout=SMOKE_TIMEOUT_S, check=False
        )
        # What failed first (the script's own lines), then the end of the output (service logs).
        verdict = "\n".join(
            line for line in output.splitlines() if line.startswith(("smoke:", "compose:"))
        )
        assert code == 0, f"{verdict}\n...\n{output[-6000:]}"
        assert "modelyard is up" in output
        assert "smoke: ok: chat completion answered by deployment-" in output
    finally:
        # The script tears down on its own; this covers a timeout or an interrupted run.
        await commands.run_command(
            "bash", "scripts/compose.sh", "down", "-v", env=env, timeout=300, check=False
        )
        await asyncio.to_thread(shutil.rmtree, data_dir, ignore_errors=True)
    _, leftovers = await commands.run_command(
        "docker", "ps", "-aq", "--filter", f"label=com.docker.compose.project={project}"
    )
    assert leftovers.split() == [], "compose.sh left containers behind"
