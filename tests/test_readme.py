"""The README walkthrough runs as written against `make up`.

Every fenced shell block that follows a `<!-- walkthrough: run -->` line in README.md is taken
verbatim, in order, and run in one bash (`-e -o pipefail`, so the first failing command fails
the test) from the repository root, against the session's compose suite (its own project and
ports, which the scripts and the CLI read from the environment). Whatever the README says is
what runs: change the README and this test checks the new story.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

pytestmark = [pytest.mark.docker, pytest.mark.compose]

README = Path(__file__).resolve().parent.parent / "README.md"
MARKER = "<!-- walkthrough: run -->"
BLOCK = re.compile(
    r"^" + re.escape(MARKER) + r"[ \t]*\n```(?:bash|sh|shell|console)?[ \t]*\n(.*?)^```[ \t]*$",
    re.MULTILINE | re.DOTALL,
)


def walkthrough_blocks(text: str) -> list[str]:
    """Return the marked shell blocks of a README, in order."""
    blocks = [match.group(1) for match in BLOCK.finditer(text)]
    if text.count(MARKER) != len(blocks):
        raise AssertionError(f"a {MARKER} line must be followed directly by a ```bash block")
    return blocks


def test_marked_blocks_are_found_exactly() -> None:
    text = f"intro\n{MARKER}\n```bash\necho one\n```\nnot run:\n```bash\necho two\n```\n"
    text += f"{MARKER}\n```sh\necho three\n```\n"
    assert walkthrough_blocks(text) == ["echo one\n", "echo three\n"]
    with pytest.raises(AssertionError):
        walkthrough_blocks(f"{MARKER}\n\nprose\n```bash\necho x\n```\n")


@pytest.mark.timeout(1800)
async def test_the_readme_walkthrough_runs_as_written(compose_suite, tmp_path: Path) -> None:
    blocks = walkthrough_blocks(README.read_text())
    assert blocks, f"README.md marks no walkthrough block with {MARKER}"
    script = tmp_path / "walkthrough.sh"
    script.write_text("set -e -o pipefail\nset -x\n" + "\n".join(blocks))
    urls = compose_suite.urls
    env = {
        **compose_suite.env,
        # Where the CLI finds this suite (its own ports), and a config file of its own.
        "MODELYARD_REGISTRY_URL": urls["registry"],
        "MODELYARD_DEPLOYER_URL": urls["deployer"],
        "MODELYARD_GATEWAY_URL": urls["gateway"],
        "MODELYARD_CONFIG": str(tmp_path / "modelyard" / "config.yaml"),
    }
    code, output = await compose_suite.commands.run_command(
        "bash", str(script), env=env, timeout=1500, check=False
    )
    assert code == 0, f"the README walkthrough failed (exit {code}):\n{output[-8000:]}"
