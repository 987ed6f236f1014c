"""`modelyard login --issuer`: authorization code + PKCE on a loopback redirect, against a real
OpenID provider (node `oidc-provider`, its development sign-in and consent pages standing in for
the organisation's), then the refresh of an expired access token.

The test plays the person's browser: it reads the sign-in address the CLI prints, signs in and
consents with plain HTTP, and follows the redirect to the CLI's loopback listener.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path
from urllib.parse import urljoin

import httpx
import pytest
import yaml

PROVIDER = Path(__file__).parent / "oidc"
CLI = str(Path(sys.executable).parent / "modelyard")
AUDIENCE = "https://api.modelyard.test"

pytestmark = pytest.mark.skipif(shutil.which("node") is None, reason="needs Node.js")


def free_port() -> int:
    """Return a TCP port free on loopback."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def claims(jwt: str) -> dict[str, object]:
    """Return the (unverified) claims of a JWT."""
    payload = jwt.split(".")[1]
    decoded: dict[str, object] = json.loads(base64.urlsafe_b64decode(payload + "=" * 4))
    return decoded


@pytest.fixture
async def issuer() -> AsyncIterator[str]:
    """Return the URL of a running oidc-provider (stopped afterwards)."""
    if not (PROVIDER / "node_modules" / "oidc-provider").is_dir():
        await asyncio.to_thread(
            subprocess.run,
            ["npm", "ci", "--no-audit", "--no-fund", "--loglevel=error"],
            cwd=PROVIDER,
            check=True,
            timeout=300,
        )
    port = free_port()
    process = await asyncio.create_subprocess_exec(
        "node", str(PROVIDER / "provider.mjs"), str(port), AUDIENCE,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.DEVNULL,
    )  # fmt: skip
    assert process.stdout is not None
    line = await asyncio.wait_for(process.stdout.readline(), 30)
    assert line.startswith(b"ready"), line
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        process.terminate()
        await process.wait()


def cli_env(config: Path) -> dict[str, str]:
    """Return the CLI's environment: a config file of its own, no MODELYARD_* of the caller."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith("MODELYARD_")}
    return {**clean, "MODELYARD_CONFIG": str(config)}


async def start_login(config: Path, *args: str) -> tuple[asyncio.subprocess.Process, str]:
    """Start `modelyard ARGS` and return it with the first address it prints on stderr."""
    login = await asyncio.create_subprocess_exec(
        CLI, *args, env=cli_env(config),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    assert login.stderr is not None
    while True:
        line = (await asyncio.wait_for(login.stderr.readline(), 30)).decode()
        assert line, "the CLI printed no sign-in address"
        if "http" in line:
            return login, line.strip()


async def sign_in_as(browser: httpx.AsyncClient, url: str, login: str) -> httpx.Response:
    """Walk the provider's pages from `url` as a person would; return the final answer.

    Each page's first form is submitted with its hidden fields, plus a login and a password
    where it asks for them (sign-in, consent and device confirmation pages alike).
    """
    response = await browser.get(url)
    for _ in range(12):
        if response.is_redirect:
            response = await browser.get(urljoin(str(response.url), response.headers["location"]))
            continue
        page = response.text
        form = re.search(r"<form[^>]*action=\"([^\"]+)\"(.*?)</form>", page, re.DOTALL)
        if response.status_code != 200 or form is None:
            return response
        fields = dict(
            re.findall(r'<input[^>]*type="hidden"[^>]*name="([^"]+)"[^>]*value="([^"]*)"', page)
        )
        if 'name="login"' in form.group(2):
            fields.update({"login": login, "password": "anything"})
        response = await browser.post(urljoin(str(response.url), form.group(1)), data=fields)
    raise AssertionError("the sign-in did not finish")


async def test_login_with_pkce_stores_tokens_and_refreshes_them(
    issuer: str, tmp_path: Path
) -> None:
    config = tmp_path / "config.yaml"
    env = cli_env(config)
    login, url = await start_login(
        config, "login", "--issuer", issuer, "--client-id", "modelyard-cli", "--no-browser",
        "--resource", AUDIENCE, "--workspace", "acme",
    )  # fmt: skip
    assert "code_challenge_method=S256" in url
    assert "redirect_uri=http%3A%2F%2F127.0.0.1%3A" in url  # a loopback redirect

    async with httpx.AsyncClient(timeout=30) as browser:
        final = await sign_in_as(browser, url, "alice")
    assert final.status_code == 200, final.text
    assert "Signed in to Modelyard" in final.text
    _, err = await asyncio.wait_for(login.communicate(), 60)
    assert login.returncode == 0, err.decode()

    assert config.stat().st_mode & 0o777 == 0o600
    context = yaml.safe_load(config.read_text())["contexts"]["default"]
    token = context["token"]
    assert claims(token)["sub"] == "alice"
    assert claims(token)["aud"] == AUDIENCE
    assert context["oidc"]["refresh_token"]
    assert context["oidc"]["expires_at"] > time.time()
    assert context["workspace"] == "acme"

    # An expired access token is refreshed before the next call (which then fails to reach the
    # service here: nothing listens there, and the CLI says so with exit 1).
    context["oidc"]["expires_at"] = time.time() - 5
    config.write_text(
        yaml.safe_dump({"current_context": "default", "contexts": {"default": context}})
    )
    config.chmod(0o600)
    later = await asyncio.create_subprocess_exec(
        CLI, "devices", env={**env, "MODELYARD_DEPLOYER_URL": "http://127.0.0.1:9"},
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    _, err = await asyncio.wait_for(later.communicate(), 60)
    assert later.returncode == 1
    assert "cannot reach" in err.decode()
    refreshed = yaml.safe_load(config.read_text())["contexts"]["default"]
    assert refreshed["token"] != token
    assert claims(refreshed["token"])["sub"] == "alice"
    assert refreshed["oidc"]["expires_at"] > time.time()


async def test_a_sign_in_the_person_aborts_exits_1_and_saves_nothing(
    issuer: str, tmp_path: Path
) -> None:
    config = tmp_path / "config.yaml"
    login, url = await start_login(
        config, "login", "--issuer", issuer, "--client-id", "modelyard-cli", "--no-browser"
    )
    async with httpx.AsyncClient(timeout=30, follow_redirects=True) as browser:
        page = await browser.get(url)
        abort = re.search(r'href="([^"]*/abort)"', page.text)
        assert abort is not None, page.text
        final = await browser.get(urljoin(str(page.url), abort.group(1)))
    assert final.status_code == 200  # the CLI's loopback page
    _, err = await asyncio.wait_for(login.communicate(), 60)
    assert login.returncode == 1
    assert "sign-in refused: End-User aborted interaction" in err.decode()
    assert not config.exists()


async def test_device_code_login_for_a_machine_without_a_browser(
    issuer: str, tmp_path: Path
) -> None:
    config = tmp_path / "config.yaml"
    login, line = await start_login(
        config, "--context", "edge", "login", "--issuer", issuer, "--client-id", "modelyard-cli",
        "--device", "--resource", AUDIENCE,
    )  # fmt: skip
    shown = re.match(r"Open (\S+) and enter the code (\S+)", line)
    assert shown is not None, line
    # The person opens the address on another machine, confirms the code and signs in.
    async with httpx.AsyncClient(timeout=30) as browser:
        final = await sign_in_as(browser, shown.group(1), "bob")
    assert final.status_code == 200, final.text
    _, err = await asyncio.wait_for(login.communicate(), 90)
    assert login.returncode == 0, err.decode()
    saved = yaml.safe_load(config.read_text())
    assert saved["current_context"] == "edge"
    assert claims(saved["contexts"]["edge"]["token"])["sub"] == "bob"
