"""In prod (the default of the service commands) a service refuses to start with dev secrets."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from modelyard_testkit.testing import free_port

BIN = Path(sys.executable).parent
OIDC = {
    "MODELYARD_OIDC_ISSUER": "https://idp.example.com/realms/modelyard",
    "MODELYARD_OIDC_AUDIENCE": "modelyard-api",
}


def _env(**values: str) -> dict[str, str]:
    """Return the environment without any MODELYARD_ variable, plus `values`."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith("MODELYARD_")}
    return {**clean, **values}


def _serve(command: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(BIN / command), "serve", "--port", str(free_port())],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.mark.parametrize(
    ("command", "env", "variable"),
    [
        ("modelyard-registry", {}, "MODELYARD_OIDC_ISSUER"),  # prod is the default
        ("modelyard-registry", {"MODELYARD_ENV": "prod"}, "MODELYARD_OIDC_ISSUER"),
        ("modelyard-deployer", {"MODELYARD_ENV": "prod"}, "MODELYARD_OIDC_ISSUER"),
        (
            "modelyard-deployer",
            {"MODELYARD_ENV": "prod", "MODELYARD_OIDC_ISSUER": OIDC["MODELYARD_OIDC_ISSUER"]},
            "MODELYARD_OIDC_AUDIENCE",
        ),
        ("modelyard-gateway", {"MODELYARD_ENV": "prod"}, "MODELYARD_OIDC_ISSUER"),
        (
            "modelyard-gateway",
            {"MODELYARD_ENV": "prod", **OIDC},
            "MODELYARD_GATEWAY_ENCRYPTION_KEY",
        ),
        ("modelyard-agent", {"MODELYARD_ENV": "prod"}, "MODELYARD_AGENT_DEVICE_ID"),
        (
            "modelyard-agent",
            {
                "MODELYARD_ENV": "prod",
                "MODELYARD_AGENT_DEVICE_ID": "0b5f3a9e-1f7c-4d2b-9c11-2f1e1f7a1b2c",
            },
            "MODELYARD_AGENT_TOKEN",
        ),
    ],
)
def test_service_without_its_secrets_exits_with_one_line(
    command: str, env: dict[str, str], variable: str
) -> None:
    done = _serve(command, _env(**env))
    assert done.returncode == 2, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert variable in lines[0]
    assert lines[0].startswith(f"{command}: refusing to start:")


def test_service_with_its_own_settings_starts_in_prod() -> None:
    port = free_port()
    process = subprocess.Popen(
        [str(BIN / "modelyard-registry"), "serve", "--port", str(port)],
        env=_env(MODELYARD_ENV="prod", **OIDC),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert process.poll() is None, "the registry exited"
            assert time.monotonic() < deadline, "the registry did not start"
            time.sleep(0.2)
    finally:
        process.terminate()
        process.wait(timeout=15)
