"""The typed TypeScript clients match the services' OpenAPI and compile under `tsc --strict`.

`scripts/clients.sh check` dumps each app's OpenAPI document, regenerates the clients with
openapi-typescript into a scratch copy, diffs them against the committed ones and type-checks
the clients and the typed example. A second run on a tampered copy proves the check can fail.
"""

from __future__ import annotations

import asyncio
import shutil
import sys
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parent.parent
CLIENTS = REPO / "clients" / "typescript"

pytestmark = pytest.mark.skipif(shutil.which("npm") is None, reason="needs Node.js and npm")


async def check(commands: Any, clients: Path) -> tuple[int, str]:
    """Run the drift check on `clients`; return its exit code and output."""
    return await commands.run_command(
        "bash",
        "scripts/clients.sh",
        "check",
        env={"MODELYARD_TS_CLIENTS": str(clients), "PYTHON": sys.executable},
        timeout=300,
        check=False,
    )


@pytest.mark.timeout(600)
async def test_committed_clients_match_the_apps_and_compile_strictly(commands: Any) -> None:
    code, output = await check(commands, CLIENTS)
    assert code == 0, output[-4000:]
    assert "up to date" in output
    for service in ("registry", "deployer", "gateway"):
        generated = (CLIENTS / "src" / f"{service}.ts").read_text()
        assert "export interface paths" in generated
        assert "operations" in generated


@pytest.mark.timeout(600)
async def test_the_check_fails_on_drift(commands: Any, tmp_path: Path) -> None:
    if not (CLIENTS / "node_modules").is_dir():
        await check(commands, CLIENTS)  # installs node_modules
    copy = tmp_path / "clients"
    copy.mkdir()
    for name in ("openapi", "src", "examples"):
        await asyncio.to_thread(shutil.copytree, CLIENTS / name, copy / name)
    for name in ("package.json", "package-lock.json", "tsconfig.json"):
        shutil.copy(CLIENTS / name, copy / name)
    (copy / "node_modules").symlink_to(CLIENTS / "node_modules")
    registry = copy / "src" / "registry.ts"
    registry.write_text(registry.read_text().replace("learning_type", "learningType", 1))
    code, output = await check(commands, copy)
    assert code == 1, output
    assert "out of date" in output
    assert "learningType" in output
