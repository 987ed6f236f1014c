"""Running the Node-RED node tests (clients/node-red/test, `node --test` with
node-red-node-test-helper and Node-RED's own runtime) from pytest: the pytest side sets up the
real services and passes their URLs, names and keys in environment variables; each node test
writes what it counted into a JSON file read back here.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

NODE_RED = Path(__file__).resolve().parent.parent / "clients" / "node-red"


async def ensure_node_modules(commands: Any) -> Path:
    """Return clients/node-red with its pinned dependencies installed (`npm ci` when missing)."""
    helper = NODE_RED / "node_modules" / "node-red-node-test-helper"
    if not await asyncio.to_thread(helper.is_dir):
        await commands.run_command(
            *("npm", "--prefix", str(NODE_RED), "ci", "--no-audit", "--no-fund"),
            timeout=600,
        )
    return NODE_RED


def read_results(path: Path) -> dict[str, Any]:
    """Return what a node test counted (its result file), or {} when it wrote none."""
    return json.loads(path.read_text()) if path.exists() else {}


async def node_test(
    commands: Any, name: str, env: dict[str, str], result_file: Path, *, timeout: float = 300
) -> dict[str, Any]:
    """Run `clients/node-red/test/<name>.test.js`; assert it passed; return what it counted."""
    await asyncio.to_thread(result_file.unlink, missing_ok=True)
    # From the package's directory: the test helper finds Node-RED from the working directory.
    code, output = await commands.run_command(
        *("bash", "-c", 'cd "$0" && exec node --test "$1"', str(NODE_RED), f"test/{name}.test.js"),
        env={**env, "MODELYARD_RESULT_FILE": str(result_file)},
        timeout=timeout,
        check=False,
    )
    assert code == 0, f"node --test {name} exited {code}:\n{output[-6000:]}"
    assert "# fail 0" in output, output[-3000:]
    return await asyncio.to_thread(read_results, result_file)
