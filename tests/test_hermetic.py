"""The hermetic check (tests/hermetic.py) can fail: a run that leaks is reported and fails.

Each test runs pytest in a subprocess on a small project of its own, with the plugin loaded,
and reads its report. The leaks are real: a task on the session loop, a process, a PostgreSQL
connection and (with Docker) a container labelled as the device agent labels its own.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest

TESTS = Path(__file__).resolve().parent
BASE_IMAGE = os.environ.get("MODELYARD_BASE_IMAGE", "modelyard/python-base:bookworm")

INI = """\
[pytest]
asyncio_mode = auto
asyncio_default_fixture_loop_scope = session
asyncio_default_test_loop_scope = session
"""

LEAKY = """\
import asyncio
import subprocess
import sys

import asyncpg

from modelyard_common.outbox import asyncpg_dsn
from modelyard_testkit.testing import TEST_ADMIN_DB_URL

KEEP = []


async def test_leaks_a_task():
    KEEP.append(asyncio.create_task(asyncio.sleep(3600), name="leaky-task"))


async def test_leaks_a_connection():
    KEEP.append(await asyncpg.connect(asyncpg_dsn(TEST_ADMIN_DB_URL)))


def test_leaks_a_process(tmp_path):
    process = subprocess.Popen(
        [sys.executable, "-c", "import time; time.sleep(120)  # leaky-process"]
    )
    with open(PIDS, "a") as pids:
        print(process.pid, file=pids)


def test_leaks_a_container(tmp_path):
    if not CONTAINERS:
        return
    name = subprocess.run(
        ["docker", "run", "-d", "--label", "io.modelyard.managed=true",
         "-v", f"{tmp_path}:/leak:ro", IMAGE, "sleep", "120"],
        capture_output=True, text=True, check=True,
    ).stdout.strip()
    with open(CONTAINERS, "a") as ids:
        print(name, file=ids)
"""

CLEAN = """\
import asyncio
import subprocess
import sys

import asyncpg

from modelyard_common.outbox import asyncpg_dsn
from modelyard_testkit.testing import TEST_ADMIN_DB_URL


async def test_cleans_up_after_itself():
    task = asyncio.create_task(asyncio.sleep(3600), name="tidy-task")
    connection = await asyncpg.connect(asyncpg_dsn(TEST_ADMIN_DB_URL))
    process = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])
    task.cancel()
    await connection.close()
    process.terminate()
    process.wait()
"""

AFTER = """\
def test_runs_after_the_leaky_directory():
    pass
"""


def docker_image_available() -> bool:
    if shutil.which("docker") is None:
        return False
    found = subprocess.run(
        ["docker", "image", "inspect", BASE_IMAGE], capture_output=True, check=False, timeout=30
    )
    return found.returncode == 0


def run_pytest(project: Path, *paths: str) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(TESTS), os.environ.get("PYTHONPATH", "")]),
    }
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-p",
            "hermetic",
            "-p",
            "no:cacheprovider",
            "-p",
            "no:randomly",
            "--import-mode=importlib",
            "-q",
            "-rA",
            *paths,
        ],
        cwd=project,
        env=env,
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )


def test_a_leaky_run_fails_and_names_each_leftover(tmp_path: Path) -> None:
    project = tmp_path / "project"
    (project / "leaky").mkdir(parents=True)
    (project / "after").mkdir()
    pids, containers = tmp_path / "pids", tmp_path / "containers"
    with_docker = docker_image_available()
    header = f"PIDS = {str(pids)!r}\nCONTAINERS = {str(containers) if with_docker else ''!r}\n"
    header += f"IMAGE = {BASE_IMAGE!r}\n"
    (project / "pytest.ini").write_text(INI)
    (project / "leaky" / "conftest.py").write_text("# a directory of its own (a package)\n")
    (project / "leaky" / "test_leaks.py").write_text(LEAKY + header)
    (project / "after" / "test_after.py").write_text(AFTER)
    try:
        result = run_pytest(project, "leaky", "after")
    finally:
        for pid in pids.read_text().split() if pids.exists() else []:
            with contextlib.suppress(ProcessLookupError):
                os.kill(int(pid), signal.SIGKILL)
        for name in containers.read_text().split() if containers.exists() else []:
            subprocess.run(["docker", "rm", "-f", name], capture_output=True, check=False)
    output = result.stdout + result.stderr
    assert result.returncode == 1, output
    # The module's end: the process (and the container) it started.
    assert "module leaky/test_leaks.py left behind:" in output, output
    # The directory's end: the task on the session loop and the connection as well.
    assert "directory leaky left behind (its fixtures have ended):" in output, output
    assert "task 'leaky-task' running sleep" in output, output
    assert "leaky-process" in output, output
    assert "PostgreSQL connection" in output, output
    if with_docker:
        assert "container " in output, output
    # The session's end: what is still there is listed and fails the run.
    assert "thing(s) outlived the session" in output, output
    assert "peak PostgreSQL connections: " in output, output


def test_a_tidy_run_passes_the_check(tmp_path: Path) -> None:
    (tmp_path / "pytest.ini").write_text(INI)
    (tmp_path / "test_clean.py").write_text(CLEAN)
    result = run_pytest(tmp_path, "test_clean.py")
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    assert "nothing outlived the session" in output, output
    assert "peak PostgreSQL connections: " in output, output
    assert "not measured" not in output, output


SERVICE_CONFTEST = """\
import asyncio

import pytest

ORDER = {order!r}


def note(what):
    with open(ORDER, "a") as order:
        print(what, file=order)


@pytest.fixture(scope="package")
def app():
    note("app up")
    yield
    note("app down")


@pytest.fixture(scope="session")
async def health_loop():
    # As the gateway's replicas did: a session fixture of a service's directory whose loop
    # runs on while the next directory's tests run.
    task = asyncio.create_task(asyncio.sleep(3600), name="health-loop")
    yield
    task.cancel()
"""

SERVICE_TEST = """\
def test_uses_the_app(app, health_loop):
    pass
"""

OTHER_TEST = """\
def test_in_the_next_directory():
    with open({order!r}, "a") as order:
        print("next directory", file=order)
"""


def test_a_directory_s_fixtures_end_with_it_and_a_loop_outliving_it_is_reported(
    tmp_path: Path,
) -> None:
    order = tmp_path / "order"
    (tmp_path / "pytest.ini").write_text(INI)
    for name in ("service", "other"):
        (tmp_path / name).mkdir()
    (tmp_path / "service" / "conftest.py").write_text(SERVICE_CONFTEST.format(order=str(order)))
    (tmp_path / "service" / "test_service.py").write_text(SERVICE_TEST)
    (tmp_path / "other" / "test_other.py").write_text(OTHER_TEST.format(order=str(order)))
    result = run_pytest(tmp_path, "service", "other")
    output = result.stdout + result.stderr
    # `scope="package"` in a directory without __init__.py: over when the directory is.
    assert order.read_text().split("\n")[:-1] == ["app up", "app down", "next directory"]
    # The session fixture's loop was still running when its directory ended.
    assert "directory service left behind (its fixtures have ended):" in output, output
    assert "task 'health-loop' running sleep" in output, output
    assert result.returncode == 1, output


def test_the_plugin_is_loaded_by_the_root_conftest(request: pytest.FixtureRequest) -> None:
    assert request.config.pluginmanager.has_plugin("hermetic")
