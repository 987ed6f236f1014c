"""CI's entry point (.ci/run) and `make test`: what a busy CI run must still show.

`.ci/run` runs with every tool it looks for stubbed on PATH (nothing is installed), and a `make`
that records its targets and fails the one a test chooses.
"""

from __future__ import annotations

import os
import stat
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
TOOLS = [
    "psql", "rabbitmqctl", "dockerd", "docker-compose", "docker", "debootstrap", "ip", "node",
    "npm", "nginx", "kubectl", "pdftoppm", "apt-get",
]  # fmt: skip


def stub(directory: Path, name: str, body: str) -> None:
    path = directory / name
    path.write_text(f"#!/usr/bin/env bash\n{body}\n")
    path.chmod(path.stat().st_mode | stat.S_IEXEC)


def run_ci(tmp_path: Path, failing: str) -> tuple[int, list[str], str]:
    """Run .ci/run with stubs; `make <failing>` exits 2. Return (code, make targets, output)."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    calls = tmp_path / "make-calls"
    for tool in TOOLS:
        stub(bin_dir, tool, "exit 0")
    stub(bin_dir, "make", f'echo "$*" >> {calls}\n[ "$1" = "{failing}" ] && exit 2\nexit 0')
    result = subprocess.run(
        ["bash", str(REPO / ".ci" / "run")],
        env={**os.environ, "PATH": f"{bin_dir}:/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    targets = calls.read_text().split("\n")[:-1] if calls.exists() else []
    return result.returncode, targets, result.stdout + result.stderr


def test_a_failing_make_test_still_runs_the_fuzzer_and_fails_ci(tmp_path: Path) -> None:
    code, targets, output = run_ci(tmp_path, failing="test")
    assert targets == ["install", "lint", "test", "fuzz"], output
    assert code != 0, output
    assert "make test" in output


@pytest.mark.parametrize("failing", ["fuzz", "none"])
def test_ci_fails_exactly_when_a_suite_fails(tmp_path: Path, failing: str) -> None:
    code, targets, output = run_ci(tmp_path, failing=failing)
    assert targets == ["install", "lint", "test", "fuzz"], output
    assert (code != 0) == (failing == "fuzz"), output


def test_make_test_prints_the_15_slowest_tests() -> None:
    dry_run = subprocess.run(
        ["make", "-n", "test"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    ).stdout
    pytest_line = next(line for line in dry_run.splitlines() if "/pytest " in line)
    assert "--durations=15" in pytest_line.split()
