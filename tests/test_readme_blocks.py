"""Every shell block of every README is run by a test as written, or says why it is not.

A fenced block is a shell block when its language is bash, sh, shell, console or zsh, or when it
has none (a block that is not shell says so: ```text, ```yaml, ```ini ...). The line right before
each shell block is one of:

* `<!-- walkthrough: run -->`: tests/test_readme.py runs it against the compose suite (`make up`);
* `<!-- run: local -->`: the test below runs it as written, with `bash -e -o pipefail` from the
  repository root, against the real local PostgreSQL and RabbitMQ; such a block starts what it
  needs and stops it again, as a person pasting it would need;
* `<!-- not run: REASON -->`: not runnable here, and why (a cloud account, a template, ...).

The local run gives a block its own database, vhost and port through the variables the block
reads with a default (`${MODELYARD_DATABASE_URL:-...}`, `${MODELYARD_REGISTRY_PORT:-8001}`), so
the defaults a person gets are what is written, and the test never touches theirs.
"""

from __future__ import annotations

import asyncio
import os
import re
import signal
import subprocess
from dataclasses import dataclass
from pathlib import Path

import asyncpg
import pytest

from modelyard_common.outbox import asyncpg_dsn
from modelyard_testkit.testing import (
    TEST_ADMIN_DB_URL,
    TEST_AMQP_URL,
    TEST_VHOST,
    free_port,
    recreate_database,
)

REPO = Path(__file__).resolve().parent.parent
SHELL_LANGUAGES = {"", "bash", "sh", "shell", "console", "zsh"}
WALKTHROUGH = "<!-- walkthrough: run -->"
RUN_LOCAL = "<!-- run: local -->"
NOT_RUN = re.compile(r"^<!-- not run: (?P<reason>.*\S.*?) -->$")
FENCE = re.compile(r"^(?P<indent>[ \t]*)(?P<fence>`{3,}|~{3,})[ \t]*(?P<info>[^`]*?)[ \t]*$")


@dataclass(frozen=True)
class Block:
    """A fenced code block of a Markdown file."""

    path: str
    line: int  # of the opening fence, 1-based
    language: str
    marker: str  # the line right before the fence, stripped
    body: str

    @property
    def is_shell(self) -> bool:
        return self.language in SHELL_LANGUAGES

    @property
    def where(self) -> str:
        return f"{self.path}:{self.line}"


def fenced_blocks(text: str, path: str = "README.md") -> list[Block]:
    """Return the fenced code blocks of a Markdown text, in order."""
    lines = text.splitlines()
    blocks: list[Block] = []
    index = 0
    while index < len(lines):
        opening = FENCE.match(lines[index])
        if opening is None:
            index += 1
            continue
        fence = opening["fence"]
        language = opening["info"].split()[0].lower() if opening["info"] else ""
        end = index + 1
        while end < len(lines):
            closing = FENCE.match(lines[end])
            if (
                closing is not None
                and closing["fence"][0] == fence[0]
                and len(closing["fence"]) >= len(fence)
                and not closing["info"]
            ):
                break
            end += 1
        else:
            raise AssertionError(f"{path}:{index + 1}: a fenced block is never closed")
        marker = lines[index - 1].strip() if index > 0 else ""
        body = "\n".join(line.removeprefix(opening["indent"]) for line in lines[index + 1 : end])
        blocks.append(Block(path, index + 1, language, marker, body + "\n"))
        index = end + 1
    return blocks


def unmarked(blocks: list[Block]) -> list[str]:
    """Return where each shell block lacks a run or not-run marker (with a reason)."""
    return [
        f"{block.where} ({block.language or 'no language'})"
        for block in blocks
        if block.is_shell
        and block.marker not in (WALKTHROUGH, RUN_LOCAL)
        and NOT_RUN.match(block.marker) is None
    ]


def readmes() -> list[Path]:
    """Return every README.md the repository tracks."""
    listed = subprocess.run(
        ["git", "ls-files", "README.md", "**/README.md"],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    return [REPO / name for name in sorted(set(listed))]


async def drop_database(url: str) -> None:
    conn = await asyncpg.connect(asyncpg_dsn(TEST_ADMIN_DB_URL))
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{url.rsplit("/", 1)[1]}" WITH (FORCE)')
    finally:
        await conn.close()


def all_blocks() -> list[Block]:
    return [
        block
        for readme in readmes()
        for block in fenced_blocks(readme.read_text(), str(readme.relative_to(REPO)))
    ]


def test_fenced_blocks_and_their_markers_are_found_exactly() -> None:
    text = (
        "intro\n"
        "<!-- run: local -->\n```bash\necho one\n```\n"
        "```\nunmarked, no language\n```\n"
        "<!-- not run: needs a cloud account -->\n```sh\necho two\n```\n"
        "<!-- not run:  -->\n```console\nan empty reason\n```\n"
        "```text\nnot shell\n```\n"
        "- a list item:\n\n  <!-- walkthrough: run -->\n  ```bash\n  echo three\n  ```\n"
        "````bash\n```\nnested fence\n````\n"
    )
    blocks = fenced_blocks(text)
    assert [(b.line, b.language, b.marker) for b in blocks] == [
        (3, "bash", RUN_LOCAL),
        (6, "", "```"),
        (10, "sh", "<!-- not run: needs a cloud account -->"),
        (14, "console", "<!-- not run:  -->"),
        (17, "text", "```"),
        (23, "bash", WALKTHROUGH),
        (26, "bash", "```"),
    ]
    assert blocks[0].body == "echo one\n"
    assert blocks[5].body == "echo three\n"
    assert blocks[6].body == "```\nnested fence\n"
    assert unmarked(blocks) == [
        "README.md:6 (no language)",
        "README.md:14 (console)",
        "README.md:26 (bash)",
    ]
    with pytest.raises(AssertionError, match="never closed"):
        fenced_blocks("```bash\necho open\n")


def test_every_readme_shell_block_is_run_or_says_why_not() -> None:
    blocks = all_blocks()
    assert {b.path for b in blocks} >= {"README.md", "services/deployer/README.md"}
    missing = unmarked(blocks)
    assert not missing, (
        "shell blocks without a marker on the line before them "
        f"({WALKTHROUGH}, {RUN_LOCAL} or <!-- not run: REASON -->):\n  " + "\n  ".join(missing)
    )


LOCAL_BLOCKS = [block for block in all_blocks() if block.marker == RUN_LOCAL]


def test_the_registry_walkthrough_is_run_here() -> None:
    assert any("modelyard-registry serve" in block.body for block in LOCAL_BLOCKS), (
        f"the registry walkthrough is no longer marked {RUN_LOCAL}"
    )


@pytest.mark.timeout(600)
@pytest.mark.parametrize("block", LOCAL_BLOCKS, ids=[block.where for block in LOCAL_BLOCKS])
async def test_local_block_runs_as_written(block: Block, tmp_path: Path) -> None:
    name = "modelyard_readme"
    database_url = await recreate_database(TEST_ADMIN_DB_URL, name)
    # What a person's shell has, less any MODELYARD_ setting: the block must set what it needs
    # (MODELYARD_ENV above all); only the places below are the test's own.
    env = {key: value for key, value in os.environ.items() if not key.startswith("MODELYARD_")}
    env.update(
        MODELYARD_DATABASE_URL=database_url,
        MODELYARD_DB_NAME=database_url.rsplit("/", 1)[1],  # what `make services` makes sure of
        MODELYARD_AMQP_URL=TEST_AMQP_URL,
        MODELYARD_VHOSTS=TEST_VHOST,
        MODELYARD_REGISTRY_PORT=str(free_port()),
        MODELYARD_CONFIG=str(tmp_path / "modelyard.yaml"),
    )
    script = tmp_path / "block.sh"
    script.write_text(block.body)
    process = await asyncio.create_subprocess_exec(
        "bash",
        "-e",
        "-o",
        "pipefail",
        str(script),
        cwd=REPO,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        output, _ = await asyncio.wait_for(process.communicate(), timeout=300)
    finally:
        if process.returncode is None:
            os.killpg(process.pid, signal.SIGKILL)
            await process.wait()
        await drop_database(database_url)
    text = output.decode(errors="replace")
    assert process.returncode == 0, f"{block.where} failed (exit {process.returncode}):\n{text}"
    assert "Traceback" not in text, text
    # Nothing a block started outlives it (its registry listened on the port given above).
    pgrep = await asyncio.create_subprocess_exec(
        "pgrep",
        "-f",
        "--",
        f"serve --port {env['MODELYARD_REGISTRY_PORT']}",
        stdout=asyncio.subprocess.PIPE,
    )
    leftovers = (await pgrep.communicate())[0].decode().split()
    assert not leftovers, f"{block.where} left processes running: {leftovers}"
