"""Every test suite runs the services in development mode unless a test says otherwise.

Services default to MODELYARD_ENV=prod (which refuses development secrets and HS256 tokens);
tests use development secrets, so they set dev explicitly here, for in-process apps and for the
subprocesses they start with this environment.

Services also default to the policy gate `enforce` (nothing unapproved is deployed or served).
Tests of other features deploy models nobody reviewed, so workspaces without a chosen gate are
`off` here; the gate's own tests choose `enforce` or `warn` per workspace (`PUT /v1/policy`),
and the compose suite (README walkthrough) runs with the real default.
"""

import os

os.environ["MODELYARD_ENV"] = "dev"
os.environ.setdefault("MODELYARD_POLICY_DEFAULT_GATE", "off")


# --- Session-wide checks (issue 18): no secret in any log, and the adversarial tally. ---------
#
# Every log record of the in-process apps goes to `<basetemp>/inprocess.log`; the services that
# tests start as processes write theirs under the same basetemp (`*.log`). At the end of the run
# each file is scanned for a secret: the shapes of the product's own secrets (gateway keys,
# device and provisioning tokens, Fernet-sealed values) and any plain value a test registers
# with the `secret_watch` fixture (cloud tokens, proxy passwords, secret headers). A hit fails
# the session and names the file and line.

import logging  # noqa: E402
import re  # noqa: E402
from collections import defaultdict  # noqa: E402
from pathlib import Path  # noqa: E402

import pytest  # noqa: E402

SECRET_SHAPES = {
    "gateway API key": re.compile(r"sk-my-[A-Za-z0-9_-]{20,}"),
    "device token": re.compile(r"mydev_[A-Za-z0-9_-]{20,}"),
    "provisioning token": re.compile(r"myprov_[A-Za-z0-9_-]{20,}"),
    "sealed value (Fernet)": re.compile(r"gAAAAA[A-Za-z0-9_=-]{40,}"),
}
_watched_secrets: set[str] = set()
_tally: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))


class SecretWatch:
    """Plain secrets a test sends to the product; none of them may appear in any log."""

    def add(self, *values: str) -> None:
        for value in values:
            if value and len(value) >= 8:
                _watched_secrets.add(value)


@pytest.fixture(scope="session")
def secret_watch() -> SecretWatch:
    """Register plain secrets (tokens, passwords) that the end-of-run log scan looks for."""
    return SecretWatch()


class AdversarialTally:
    """Counts an adversarial test reports: probes sent, 5xx answers, secrets a listener saw,
    gate bypasses. Printed as one table at the end of the run."""

    def __init__(self, name: str) -> None:
        self._row = _tally[name]

    def add(self, *, probes: int = 0, server_errors: int = 0, secrets_seen: int = 0,
            gate_bypasses: int = 0) -> None:
        self._row["probes"] += probes
        self._row["5xx"] += server_errors
        self._row["secrets seen"] += secrets_seen
        self._row["gate bypasses"] += gate_bypasses


@pytest.fixture
def adversarial_tally(request: pytest.FixtureRequest) -> AdversarialTally:
    """A row of the adversarial table, named after the test."""
    return AdversarialTally(request.node.nodeid.split("::", 1)[-1])


@pytest.hookimpl(trylast=True)
def pytest_configure(config: pytest.Config) -> None:
    if hasattr(config, "workerinput"):  # pragma: no cover - no xdist here, kept honest
        return
    base = Path(config._tmp_path_factory.getbasetemp())  # type: ignore[attr-defined]
    handler = logging.FileHandler(base / "inprocess.log", encoding="utf-8")
    handler.setFormatter(logging.Formatter("%(levelname)s %(name)s %(message)s"))
    logging.getLogger().addHandler(handler)
    config._modelyard_log_handler = handler  # type: ignore[attr-defined]


def _scan_logs(base: Path) -> list[str]:
    hits: list[str] = []
    for path in sorted(base.rglob("*.log")):
        try:
            text = path.read_text(errors="replace")
        except OSError:
            continue
        for number, line in enumerate(text.splitlines(), 1):
            for what, shape in SECRET_SHAPES.items():
                if shape.search(line):
                    hits.append(f"{path.relative_to(base)}:{number}: {what}")
            for secret in _watched_secrets:
                if secret in line:
                    hits.append(f"{path.relative_to(base)}:{number}: a registered secret")
    return hits


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    config = session.config
    handler = getattr(config, "_modelyard_log_handler", None)
    if handler is None:
        return
    handler.flush()
    base = Path(config._tmp_path_factory.getbasetemp())  # type: ignore[attr-defined]
    hits = _scan_logs(base)
    config._modelyard_secret_hits = hits  # type: ignore[attr-defined]
    if hits and session.exitstatus == 0:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    config = terminalreporter.config
    hits = getattr(config, "_modelyard_secret_hits", None)
    if hits is not None:
        terminalreporter.section("log scan for secrets")
        if hits:
            terminalreporter.write_line(f"FAILED: {len(hits)} secret(s) found in logs")
            for hit in hits[:50]:
                terminalreporter.write_line(f"  {hit}")
        else:
            terminalreporter.write_line(
                f"0 secrets in logs ({len(SECRET_SHAPES)} shapes, "
                f"{len(_watched_secrets)} registered values)"
            )
    if _tally:
        terminalreporter.section("adversarial probes")
        columns = ["probes", "5xx", "secrets seen", "gate bypasses"]
        width = max(len(name) for name in _tally)
        terminalreporter.write_line(f"{'test':<{width}}  " + "  ".join(columns))
        totals = dict.fromkeys(columns, 0)
        for name, row in sorted(_tally.items()):
            cells = "  ".join(f"{row[c]:>{len(c)}}" for c in columns)
            terminalreporter.write_line(f"{name:<{width}}  {cells}")
            for c in columns:
                totals[c] += row[c]
        cells = "  ".join(f"{totals[c]:>{len(c)}}" for c in columns)
        terminalreporter.write_line(f"{'total':<{width}}  {cells}")


# --- Hermetic tests (issue 20): nothing a test or fixture starts outlives it. -----------------
#
# tests/hermetic.py checks, when each module, directory and the session end, that no asyncio
# task, process, Docker container or PostgreSQL connection of the run is left, and prints the
# run's peak PostgreSQL connections. Directories whose conftest defines fixtures are collected as
# packages there, so `scope="package"` fixtures end with their directory.
#
# Every engine of the run (in-process apps and the services tests start as processes) keeps a
# small pool: at most 2 x MODELYARD_DB_POOL_SIZE connections each (pool plus overflow), so the
# suite stays far from PostgreSQL's max_connections even when another client holds many.

import sys  # noqa: E402

os.environ.setdefault("MODELYARD_DB_POOL_SIZE", "3")
sys.path.insert(0, str(Path(__file__).parent / "tests"))
pytest_plugins = ["hermetic"]
