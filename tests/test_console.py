"""The web console in a real browser against the real registry and a real OpenID provider.

The console (clients/console) is built once and served by its own server (serve.py, as in its
container) on a loopback port; the registry runs as a process in prod mode, so it accepts only
the provider's tokens and the console offers no development sign-in. People sign in through
the provider's pages with the authorization code grant and PKCE. The browser checks live in
clients/console/e2e/console.e2e.mjs (playwright-core driving Debian's Chromium, selecting by
role and label); each prints a JSON line, asserted here one by one. Then the bench lists a
workspace of 1,000 models and prints the initial JS size and the times.

Screenshots go to $MODELYARD_CONSOLE_SCREENSHOTS (clients/console/docs for the committed ones)
or to the test's temporary directory.
"""

from __future__ import annotations

import asyncio
import http.server
import io
import json
import os
import shutil
import signal
import sys
import threading
import time
import uuid
import zipfile
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest
from cryptography.fernet import Fernet
from suite_testkit import openai_manifest  # tests/ is on the path (conftest)

from modelyard_common.outbox import asyncpg_dsn
from modelyard_testkit.testing import (
    TEST_ADMIN_DB_URL,
    TEST_AMQP_URL,
    TEST_MANAGEMENT_URL,
    TEST_VHOST,
    OidcProvider,
    ensure_management_api,
    ensure_vhost,
    free_port,
    recreate_database,
    wait_for,
)

REPO = Path(__file__).resolve().parent.parent
CONSOLE = REPO / "clients" / "console"
BIN = Path(sys.executable).parent
CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
AUDIENCE = "https://api.modelyard.test"
BULK = "bulk-"
BULK_COUNT = 105
BENCH_MODELS = 1000
# The access tokens of the console left open (the token refresh check): 10 s.
SHORT_TOKEN_TTL_S = 10
LEARNING_TYPES = ("supervised", "unsupervised", "semi_supervised", "reinforcement")

pytestmark = pytest.mark.skipif(
    shutil.which("node") is None or not Path(CHROMIUM).exists(),
    reason="needs Node.js and Chromium (.ci/run installs both)",
)

# The people of the browser checks, as the provider's accounts (claims in their access tokens).
ACCOUNTS = {
    "alice": {"workspaces": ["acme", "lab"], "roles": ["editor"]},
    "bob": {"workspaces": ["acme"], "roles": ["approver"]},
    "victor": {"workspaces": ["acme"], "roles": ["viewer"]},
    "root": {"workspaces": ["acme"], "roles": ["admin"]},
    "bencher": {"workspaces": ["bench"], "roles": ["viewer"]},
}


async def run(*argv: str, cwd: Path, timeout: float, env: dict[str, str] | None = None) -> str:
    """Run a command to completion; return its output (stdout and stderr); fail on exit != 0."""
    process = await asyncio.create_subprocess_exec(
        *argv,
        cwd=cwd,
        env={**os.environ, **(env or {})},
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    try:
        output, _ = await asyncio.wait_for(process.communicate(), timeout)
    except TimeoutError:
        process.kill()
        await process.wait()
        raise
    text = output.decode(errors="replace")
    assert process.returncode == 0, f"{' '.join(argv)} exited {process.returncode}:\n{text[-6000:]}"
    return text


@pytest.fixture(scope="module")
async def console_dist() -> Path:
    """Return clients/console/dist, built once (`npm ci` first when node_modules is missing)."""
    if not (CONSOLE / "node_modules" / "vite").is_dir():
        await run(
            "npm", "ci", "--no-audit", "--no-fund", "--loglevel=error", cwd=CONSOLE, timeout=300
        )
    await run("npm", "run", "build", cwd=CONSOLE, timeout=180)
    return CONSOLE / "dist"


@dataclass
class Platform:
    """The registry, deployer and gateway (prod mode), the OpenID provider and the console, as a
    browser reaches them."""

    registry: str
    deployer: str
    gateway: str
    console: str
    provider: OidcProvider
    # The same console told the services run in dev mode (MODELYARD_ENV=dev).
    dev_console: str
    # The same console as another client of the provider, whose access tokens live 10 s.
    short_console: str
    # The deployer's database (the rollout devices' last heartbeat is set there).
    deployer_database: str
    # The registry's database (a model's usage per day is seeded there).
    registry_database: str


async def start(
    argv: list[str], env: dict[str, str], log: Path, processes: list[asyncio.subprocess.Process]
) -> None:
    """Start a process with its output in `log`; remember it for the teardown."""
    handle = await asyncio.to_thread(log.open, "wb")
    with handle:  # the child keeps its own descriptor
        process = await asyncio.create_subprocess_exec(
            *argv, env=env, stdin=asyncio.subprocess.DEVNULL, stdout=handle, stderr=handle
        )
    processes.append(process)


async def answers(http: httpx.AsyncClient, url: str) -> bool:
    """Return whether `url` answers 200 now."""
    try:
        return (await http.get(url, timeout=2)).status_code == 200
    except httpx.TransportError:
        return False


@pytest.fixture
async def platform(console_dist: Path, tmp_path: Path) -> AsyncIterator[Platform]:
    """Yield the registry, deployer and gateway in prod mode on fresh databases, the provider
    and the console."""
    console_port, dev_console_port, short_console_port = free_port(), free_port(), free_port()
    console = f"http://127.0.0.1:{console_port}"
    dev_console = f"http://127.0.0.1:{dev_console_port}"
    short_console = f"http://127.0.0.1:{short_console_port}"
    provider = OidcProvider(
        [
            {
                "client_id": "seeder",
                "client_secret": "seeder-secret-of-some-length",
                "claims": {"workspaces": ["acme", "bench"], "roles": ["admin"]},
            }
        ],
        audience=AUDIENCE,
        workdir=tmp_path,
        browser_clients=[
            {
                "client_id": "modelyard-console",
                "redirect_uris": [f"{console}/"],
                "origins": [console],
            },
            {
                "client_id": "modelyard-console-short",
                "redirect_uris": [f"{short_console}/"],
                "origins": [short_console],
                "ttl": SHORT_TOKEN_TTL_S,
            },
        ],
        accounts=ACCOUNTS,
    )
    await asyncio.to_thread(provider.start)
    database_url = await recreate_database(TEST_ADMIN_DB_URL, "modelyard_console")
    gateway_database_url = await recreate_database(TEST_ADMIN_DB_URL, "modelyard_console_gw")
    deployer_database_url = await recreate_database(TEST_ADMIN_DB_URL, "modelyard_console_dp")
    await asyncio.to_thread(ensure_vhost, TEST_VHOST)
    await asyncio.to_thread(ensure_management_api)
    clean = {k: v for k, v in os.environ.items() if not k.startswith("MODELYARD_")}
    registry_port, gateway_port, deployer_port = free_port(), free_port(), free_port()
    registry = f"http://127.0.0.1:{registry_port}"
    deployer = f"http://127.0.0.1:{deployer_port}"
    gateway = f"http://127.0.0.1:{gateway_port}"
    env = {
        **clean,
        "MODELYARD_ENV": "prod",
        "MODELYARD_DATABASE_URL": database_url,
        "MODELYARD_AMQP_URL": TEST_AMQP_URL,
        "MODELYARD_OIDC_ISSUER": provider.issuer,
        "MODELYARD_OIDC_AUDIENCE": AUDIENCE,
        "MODELYARD_CORS_ORIGINS": f"{console},{short_console}",
        "MODELYARD_LOG_JSON": "false",
        # Three services here: small pools keep the suite's PostgreSQL peak where it was
        # (a busy CI's server has other clients; see scripts/ci-under-load.sh).
        "MODELYARD_DB_POOL_SIZE": "2",
        "MODELYARD_REGISTRY_URL": registry,
        "MODELYARD_DEPLOYER_URL": deployer,
        "MODELYARD_INGRESS_SEAL_KEY": Fernet.generate_key().decode(),
        # Unapproved models may be deployed and served, with a warning (the browser checks are
        # about the screens; the gate has its own tests).
        "MODELYARD_POLICY_DEFAULT_GATE": "warn",
        "MODELYARD_CONSOLE_REGISTRY_URL": registry,
        "MODELYARD_CONSOLE_DEPLOYER_URL": deployer,
        "MODELYARD_CONSOLE_GATEWAY_URL": gateway,
        "MODELYARD_CONSOLE_OIDC_CLIENT_ID": "modelyard-console",
    }
    gateway_env = {
        **env,
        "MODELYARD_DATABASE_URL": gateway_database_url,
        "MODELYARD_GATEWAY_ENCRYPTION_KEY": Fernet.generate_key().decode(),
        # The instances the browser creates point at loopback (test traffic stays there): prod's
        # egress rules would refuse them, the rest of prod mode stays.
        "MODELYARD_GATEWAY_EGRESS_STRICT": "false",
    }
    deployer_env = {
        **env,
        "MODELYARD_DATABASE_URL": deployer_database_url,
        "MODELYARD_DEPLOYER_ARTIFACT_DIR": str(tmp_path / "artifacts"),
        "MODELYARD_DEPLOYER_BROKER_MANAGEMENT_URL": TEST_MANAGEMENT_URL,
        # The walkthrough's device (test_console_walkthrough.py) is reached on loopback, as the
        # gateway's instances are: prod refuses that, the rest of prod mode stays.
        "MODELYARD_DEPLOYER_DEVICE_INGRESS_ALLOW_LOOPBACK": "true",
    }
    processes: list[asyncio.subprocess.Process] = []
    try:
        await run(str(BIN / "modelyard-registry"), "migrate", cwd=REPO, env=env, timeout=120)
        await start(
            [str(BIN / "modelyard-registry"), "serve", "--port", str(registry_port)],
            env,
            tmp_path / "registry.log",
            processes,
        )
        for command, service_env in (("gateway", gateway_env), ("deployer", deployer_env)):
            await run(
                str(BIN / f"modelyard-{command}"), "migrate", cwd=REPO, env=service_env, timeout=120
            )
        await start(
            [str(BIN / "modelyard-deployer"), "serve", "--port", str(deployer_port)],
            deployer_env,
            tmp_path / "deployer.log",
            processes,
        )
        await start(
            [str(BIN / "modelyard-gateway"), "serve", "--port", str(gateway_port)],
            gateway_env,
            tmp_path / "gateway.log",
            processes,
        )
        await start(
            [sys.executable, str(CONSOLE / "serve.py"), "--host", "127.0.0.1"]
            + ["--port", str(console_port), "--root", str(console_dist)],
            env,
            tmp_path / "console.log",
            processes,
        )
        await start(
            [sys.executable, str(CONSOLE / "serve.py"), "--host", "127.0.0.1"]
            + ["--port", str(dev_console_port), "--root", str(console_dist)],
            {**env, "MODELYARD_ENV": "dev"},
            tmp_path / "dev-console.log",
            processes,
        )
        await start(
            [sys.executable, str(CONSOLE / "serve.py"), "--host", "127.0.0.1"]
            + ["--port", str(short_console_port), "--root", str(console_dist)],
            {**env, "MODELYARD_CONSOLE_OIDC_CLIENT_ID": "modelyard-console-short"},
            tmp_path / "short-console.log",
            processes,
        )
        async with httpx.AsyncClient() as http:
            ready = (f"{registry}/readyz", f"{deployer}/readyz", f"{gateway}/readyz")
            consoles = (console, dev_console, short_console)
            for url in (*ready, *(f"{c}/healthz" for c in consoles)):
                await wait_for(lambda url=url: answers(http, url), timeout=60, interval=0.2)
        yield Platform(
            registry=registry,
            deployer=deployer,
            gateway=gateway,
            console=console,
            provider=provider,
            dev_console=dev_console,
            short_console=short_console,
            deployer_database=deployer_database_url,
            registry_database=database_url,
        )
    finally:
        for process in processes:
            if process.returncode is None:
                process.terminate()
                await process.wait()
        await asyncio.to_thread(provider.stop)
        await drop_database(database_url)
        await drop_database(gateway_database_url)
        await drop_database(deployer_database_url)
        for log in ("registry.log", "deployer.log", "gateway.log", "console.log"):
            if (tmp_path / log).exists():
                print(f"--- {log}", (tmp_path / log).read_text(errors="replace")[-3000:], sep="\n")


async def drop_database(database_url: str) -> None:
    """Drop the test's database (its name carries MODELYARD_TEST_DB_SUFFIX)."""
    connection = await asyncpg.connect(asyncpg_dsn(TEST_ADMIN_DB_URL))
    try:
        name = database_url.rsplit("/", 1)[-1]
        await connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await connection.close()


class Seeder:
    """Writes what the browser checks start from, with the provider's token of an admin."""

    def __init__(self, http: httpx.AsyncClient, token: str) -> None:
        self.http = http
        self.token = token

    async def post(self, workspace: str, path: str, body: dict[str, Any]) -> dict[str, Any]:
        """POST `body` in `workspace`; return the created resource."""
        response = await self.http.post(
            path,
            json=body,
            headers={
                "Authorization": f"Bearer {self.token}",
                "X-Modelyard-Workspace": workspace,
            },
        )
        assert response.status_code in (200, 201), response.text
        created: dict[str, Any] = response.json()
        return created

    async def models(self, workspace: str, names: list[str]) -> None:
        """Create models named `names`, the learning types in turn, 20 requests at a time."""
        gate = asyncio.Semaphore(20)

        async def one(index: int, name: str) -> None:
            async with gate:
                learning_type = LEARNING_TYPES[index % len(LEARNING_TYPES)]
                body = {"name": name, "learning_type": learning_type, "functionality": "bulk"}
                await self.post(workspace, "/v1/models", body)

        await asyncio.gather(*(one(i, name) for i, name in enumerate(names)))


DEVICE = "edge-berlin-1"
# The device the browser deploys to from the model's Deploy section (nothing runs there first).
SECOND_DEVICE = "edge-munich-1"
# The devices the browser rolls a version out to (site=hamburg; the first is the canary). No agent
# runs there: they count as online (a heartbeat just now, set in the deployer's database), so
# the rollout's canary wave waits for them, long enough to pause, resume and abort it.
ROLLOUT_DEVICES = {
    "edge-hamburg-1": {"site": "hamburg", "ring": "canary"},
    "edge-hamburg-2": {"site": "hamburg"},
}


# The model's usage as the registry added it up from the gateway's usage events: (days ago,
# requests, errors, total tokens). The Usage tab draws it and totals it.
USAGE = [(0, 40, 2, 4000), (1, 25, 0, 2500), (3, 60, 5, 6100), (9, 12, 1, 1200)]


async def seed_usage(platform: Platform, model_id: str) -> None:
    """Write the model's usage per day into the registry's projection (as if the gateway had
    served it: the events' path has its own tests)."""
    connection = await asyncpg.connect(asyncpg_dsn(platform.registry_database))
    try:
        await connection.executemany(
            "INSERT INTO registry.model_usage (workspace, model_id, day, requests, errors,"
            " prompt_tokens, completion_tokens, total_tokens)"
            " VALUES ('acme', $1, (now() AT TIME ZONE 'utc')::date - $2::int, $3, $4, $5, $6, $7)",
            [
                (
                    uuid.UUID(model_id),
                    ago,
                    requests,
                    errors,
                    tokens // 2,
                    tokens - tokens // 2,
                    tokens,
                )
                for ago, requests, errors, tokens in USAGE
            ],
        )
    finally:
        await connection.close()


def project_zips(tmp_path: Path, project: bytes) -> dict[str, str]:
    """Write the zips the Upload checks pick: a good project (its modelyard.yaml, and some
    weights so the upload takes a moment), one without a manifest, one with a bad manifest."""
    good = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(project)) as source, zipfile.ZipFile(good, "w") as target:
        for item in source.infolist():
            target.writestr(item, source.read(item))
        target.writestr("weights.bin", os.urandom(512 * 1024))
    paths = {
        "good": tmp_path / "fraud-detector-2.zip",
        "no_manifest": tmp_path / "no-manifest.zip",
        "bad_manifest": tmp_path / "bad-manifest.zip",
    }
    paths["good"].write_bytes(good.getvalue())
    for name, files in (
        ("no_manifest", {"main.py": "print('hello')\n"}),
        (
            "bad_manifest",
            {
                "main.py": "print('hello')\n",
                "modelyard.json": json.dumps(
                    {"image": "python:3.12", "dockerfile": True, "port": 70000}
                ),
            },
        ),
    ):
        buffer = io.BytesIO()
        with zipfile.ZipFile(buffer, "w") as archive:
            for filename, text in files.items():
                archive.writestr(filename, text)
        paths[name].write_bytes(buffer.getvalue())
    return {name: str(path) for name, path in paths.items()}


async def seed_device(
    platform: Platform, token: str, *, model_id: str, project: bytes
) -> dict[str, Any]:
    """Upload a version of `model_id`, register a device and deploy the version to it; return
    the deployment (pending: no agent runs, the commands wait in the device's queue)."""
    headers = {"Authorization": f"Bearer {token}", "X-Modelyard-Workspace": "acme"}
    async with httpx.AsyncClient(base_url=platform.deployer, headers=headers, timeout=60) as http:
        version = await http.post(
            f"/v1/models/{model_id}/versions",
            data={"manifest": json.dumps(openai_manifest()), "title": "v1", "comment": "console"},
            files={"file": ("openai_echo.zip", project, "application/zip")},
        )
        assert version.status_code == 201, version.text
        device = await http.post("/v1/devices", json={"name": DEVICE, "labels": {"site": "berlin"}})
        assert device.status_code == 201, device.text
        second = await http.post(
            "/v1/devices", json={"name": SECOND_DEVICE, "labels": {"site": "munich"}}
        )
        assert second.status_code == 201, second.text
        for name, labels in ROLLOUT_DEVICES.items():
            created = await http.post("/v1/devices", json={"name": name, "labels": labels})
            assert created.status_code == 201, created.text
        connection = await asyncpg.connect(asyncpg_dsn(platform.deployer_database))
        try:
            seen = await connection.execute(
                "UPDATE deployer.devices SET last_seen_at = now() WHERE name = ANY($1::text[])",
                list(ROLLOUT_DEVICES),
            )
            assert seen == f"UPDATE {len(ROLLOUT_DEVICES)}", seen
        finally:
            await connection.close()
        batch = await http.post(
            "/v1/deployments",
            json={"version_id": version.json()["id"], "device_ids": [device.json()["id"]]},
        )
        assert batch.status_code == 201, batch.text
        (deployment,) = batch.json()["items"]
        return dict(deployment)


async def assert_device_as_the_browser_left_it(
    platform: Platform, token: str, deployment_id: str
) -> None:
    """The deployer holds what root did in Manage models: stop, start, then delete, in order."""
    headers = {"Authorization": f"Bearer {token}", "X-Modelyard-Workspace": "acme"}
    async with httpx.AsyncClient(base_url=platform.deployer, headers=headers, timeout=30) as http:
        deployment = (await http.get(f"/v1/deployments/{deployment_id}")).json()
        assert deployment["desired_state"] == "removed", deployment
        history = (
            await http.get(
                f"/v1/deployments/{deployment_id}/history", params={"source": "deployer"}
            )
        ).json()["items"]
    actions = [(entry.get("action"), entry.get("actor")) for entry in history]
    taken = [action for action, actor in actions if actor == "root"]
    assert taken == ["stop", "start", "remove"], actions


async def assert_deploy_as_the_browser_left_it(
    platform: Platform, token: str, model_id: str
) -> None:
    """The deployer holds what root did in the model's Deploy section on the second device:
    v1, then v2 by label, stop, start, restart, roll back to v1, remove, in order."""
    headers = {"Authorization": f"Bearer {token}", "X-Modelyard-Workspace": "acme"}
    async with httpx.AsyncClient(base_url=platform.deployer, headers=headers, timeout=30) as http:
        items = (await http.get(f"/v1/models/{model_id}/deployments")).json()["items"]
        (deployment,) = [d for d in items if d["device_name"] == SECOND_DEVICE]
        assert deployment["desired_state"] == "removed", deployment
        assert deployment["version_number"] == 1, deployment
        history = (
            await http.get(
                f"/v1/deployments/{deployment['id']}/history",
                params={"source": "deployer", "sort": "recorded_at"},
            )
        ).json()["items"]
    taken = [entry["action"] for entry in history if entry.get("actor") == "root"]
    assert taken[-5:] == ["stop", "start", "restart", "rollback", "remove"], taken
    assert taken.count("deploy") >= 1, taken


async def assert_gateway_as_the_browser_left_it(platform: Platform, token: str) -> None:
    """The gateway holds what the people made in the browser: two instances, the token sealed,
    the model's failover order as chosen; no answer of its admin API carries the token."""
    headers = {"Authorization": f"Bearer {token}", "X-Modelyard-Workspace": "acme"}
    async with httpx.AsyncClient(base_url=platform.gateway, headers=headers, timeout=30) as http:
        instances = (await http.get("/v1/instances")).json()["items"]
        groups = await http.get("/v1/groups")
        by_name = {i["name"]: i for i in instances}
        assert set(by_name) == {"llama-box-1", "openai-fallback"}, instances
        assert by_name["openai-fallback"]["has_token"] is True
        assert by_name["llama-box-1"]["has_token"] is False
        (chat,) = groups.json()["items"]
        assert chat["name"] == "chat"
        local, cloud = by_name["llama-box-1"], by_name["openai-fallback"]
        assert chat["instance_ids"] == [local["id"], cloud["id"]]
        one = await http.get(f"/v1/instances/{cloud['id']}")
        for answer in (one.text, groups.text, json.dumps(instances)):
            assert CLOUD_TOKEN not in answer
        # The API keys screen: the key's limits as edited last, revoked; the workspace ceiling.
        keys = {k["name"]: k for k in (await http.get("/v1/keys")).json()["items"]}
        assert set(keys) == {"support-bot", "playground"}, keys
        key = keys["support-bot"]
        assert key["groups"] == ["chat"], key
        assert key["revoked_at"] is not None, key
        assert key["expires_at"].startswith("2030-01-01"), key
        limits = {name: value for name, value in key["limits"].items() if value is not None}
        assert limits == {"requests_per_minute": 120, "tokens_per_day": 200000}, key
        ceiling = (await http.get("/v1/limits")).json()
        assert ceiling["requests_per_minute"] == 600, ceiling
        assert ceiling["updated_by"] == "root", ceiling


async def assert_access_as_the_browser_left_it(
    platform: Platform, token: str, model_id: str
) -> None:
    """The deployer holds the grants root left on the model's Access tab: victor's revoked, the
    operator role's as a deployer."""
    headers = {"Authorization": f"Bearer {token}", "X-Modelyard-Workspace": "acme"}
    async with httpx.AsyncClient(base_url=platform.deployer, headers=headers, timeout=30) as http:
        grants = (await http.get(f"/v1/models/{model_id}/access")).json()["items"]
    left = [(g["subject_type"], g["subject"], g["level"], g["created_by"]) for g in grants]
    assert left == [("role", "operator", "deployer", "root")], grants


async def assert_tokens_as_the_browser_left_it(platform: Platform, token: str) -> None:
    """One provisioning token, as root made it in the browser (the refused one made nothing),
    revoked; the list never carries a secret."""
    headers = {"Authorization": f"Bearer {token}", "X-Modelyard-Workspace": "acme"}
    async with httpx.AsyncClient(base_url=platform.deployer, headers=headers, timeout=30) as http:
        answer = await http.get("/v1/provisioning-tokens")
    (made,) = answer.json()["items"]
    assert (made["name"], made["max_uses"], made["revoked"]) == ("berlin-line-2", 3, True), made
    assert made["labels"] == {"site": "berlin", "line": "2"}, made
    assert made["created_by"] == "root", made
    assert "myprov_" not in answer.text, answer.text


async def assert_policy_as_the_browser_left_it(platform: Platform, token: str) -> None:
    """The registry holds the gate root set on the Workspace policy screen, with the comment."""
    headers = {"Authorization": f"Bearer {token}", "X-Modelyard-Workspace": "acme"}
    async with httpx.AsyncClient(base_url=platform.registry, headers=headers, timeout=30) as http:
        policy = (await http.get("/v1/policy")).json()
    got = (policy["gate"], policy["updated_by"], policy["comment"])
    assert got == ("enforce", "root", "approved models only from now on"), policy


async def assert_rollouts_as_the_browser_left_it(platform: Platform, token: str) -> None:
    """The deployer holds the rollouts root started in the browser: the one by label paused,
    resumed and aborted by root; the one to a device that never sent a heartbeat completed with
    that device skipped."""
    headers = {"Authorization": f"Bearer {token}", "X-Modelyard-Workspace": "acme"}
    async with httpx.AsyncClient(base_url=platform.deployer, headers=headers, timeout=30) as http:
        items = (await http.get("/v1/rollouts", params={"sort": "created_at"})).json()["items"]
        assert [r["state"] for r in items] == ["aborted", "completed"], items
        assert all(r["created_by"] == "root" for r in items), items
        aborted = (await http.get(f"/v1/rollouts/{items[0]['id']}")).json()
        assert sorted(d["device_name"] for d in aborted["devices"]) == sorted(ROLLOUT_DEVICES)
        assert [w["size"] for w in aborted["waves"]] == [1, 1], aborted["waves"]
        history = (
            await http.get(f"/v1/rollouts/{items[0]['id']}/history", params={"sort": "recorded_at"})
        ).json()["items"]
        by_root = [e["kind"] for e in history if e["actor"] == "root"]
        assert by_root == ["created", "paused", "resumed", "aborting"], history
        completed = (await http.get(f"/v1/rollouts/{items[1]['id']}")).json()
        (device,) = completed["devices"]
        assert (device["device_name"], device["state"]) == (DEVICE, "skipped"), device


async def run_node(script: Path, config: dict[str, Any], tmp_path: Path, timeout: float) -> str:
    """Run a Node script of the console with a JSON config file; return its output.

    The output also goes to `<script>.log` in `tmp_path` as it comes, so a run that times out
    still shows how far it got; the script and its browser are killed then (a process group).
    """
    path = tmp_path / f"{script.stem}.json"
    path.write_text(json.dumps(config))
    log = tmp_path / f"{script.stem}.log"
    handle = await asyncio.to_thread(log.open, "wb")
    with handle:
        process = await asyncio.create_subprocess_exec(
            "node", str(script), str(path),
            cwd=CONSOLE, env={**os.environ, "CHROMIUM": CHROMIUM},
            stdout=handle, stderr=asyncio.subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip
    try:
        await asyncio.wait_for(process.wait(), timeout)
    except BaseException:
        os.killpg(process.pid, signal.SIGKILL)
        await process.wait()
        print(f"--- {log.name} (killed)", log.read_text(errors="replace")[-6000:], sep="\n")
        raise
    return log.read_text(errors="replace")


def assert_checks(output: str, expected: set[str]) -> None:
    """Assert that a browser script ran exactly the `expected` checks and each passed (its lines
    `{"check": name, "ok": ..., "error": ...}`)."""
    results = {}
    for line in output.splitlines():
        if line.startswith('{"check"'):
            result = json.loads(line)
            results[result["check"]] = result
    assert set(results) == expected, output[-6000:]
    failed = [f"{name}:\n{r['error']}" for name, r in results.items() if not r["ok"]]
    assert not failed, "\n\n".join(failed) + "\n" + output[-3000:]


EXPECTED_CHECKS = {
    "no dev sign-in outside dev mode",
    "dev sign-in offered when the services run in dev mode",
    "sign-in with the OpenID provider (authorization code + PKCE)",
    "workspace switcher",
    "a viewer sees no Create button",
    "list: search, filters and cursor paging",
    "offline: said so, and the list comes back with Try again",
    "Create an AI model: learning types with definitions, field error next to its field",
    "AI system with its AI Models section: a description of use for each model",
    "AI system's obligations and evidence: a status set (a stale change refused), evidence added "
    "with a file and downloaded, the register PDF, the inventory export; a viewer changes nothing",
    "approval by two people: alice asks, bob decides",
    "a stale save is shown as changed by someone else (412)",
    "field-level history",
    "delete refused while AI systems use the model (409 naming them)",
    "Model instances: an admin creates a local and a cloud one; the token never comes back",
    "Models: an editor makes a model of two instances in failover order",
    "Device List and Manage models: stop, start and delete a model on a device",
    "Upload a version: manifest read in the browser, bad zips refused",
    "API keys: created and shown once, limits edited (a stale edit is refused), revoked; "
    "the workspace limits",
    "Request log: filters, cursor paging and Export CSV",
    "Deploy: to chosen devices and by label; actions, history, remove",
    "Access: grant, a second grant refused (409), level changed, revoke; usage per day as a chart",
    "Provisioning tokens: created and shown once with Copy, a bad lifetime refused, revoked",
    "Rollouts: waves by label, a bad wave and a busy device refused, live progress, "
    "pause, resume, abort; the list",
    "Playground: a group answer streams in, with the instance that served it; a bad key refused",
    "Workspace policy: an editor reads it, an admin sets the gate with a reason; the change listed",
    "token refresh: a console left open renews its 10 s access token and keeps working",
}
CLOUD_TOKEN = "sk-console-secret-4242-do-not-show"
# What the local model server streams to the playground (one word every 0.3 s).
PLAYGROUND_ANSWER = "Hello from llama-box-1, word by word."


class ModelServer:
    """A model server on loopback that answers the gateway's health check (GET /v1/models)."""

    def __init__(self) -> None:
        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 (the standard library's name)
                body = b'{"object": "list", "data": [{"id": "llama-3.1-8b", "object": "model"}]}'
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def do_POST(self) -> None:  # noqa: N802 (the standard library's name)
                """Stream a chat answer word by word to the playground's question; anything else
                is a 501 (the request log's failed chat)."""
                body = json.loads(self.rfile.read(int(self.headers.get("Content-Length") or 0)))
                question = str((body.get("messages") or [{}])[-1].get("content", ""))
                if self.path != "/v1/chat/completions" or "playground" not in question:
                    self.send_error(501)
                    return
                self.send_response(200)
                self.send_header("Content-Type", "text/event-stream")
                self.end_headers()
                for word in PLAYGROUND_ANSWER.split(" "):
                    chunk = {
                        "id": "chatcmpl-console",
                        "object": "chat.completion.chunk",
                        "model": "llama-3.1-8b",
                        "choices": [{"index": 0, "delta": {"content": word + " "}}],
                    }
                    self.wfile.write(f"data: {json.dumps(chunk)}\n\n".encode())
                    self.wfile.flush()
                    time.sleep(0.3)
                self.wfile.write(b"data: [DONE]\n\n")

            def log_message(self, *args: object) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> ModelServer:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=10)


# Seeding 1,105 models, the browser checks and the bench: minutes on a busy CI machine.
@pytest.mark.timeout(900)
async def test_console_in_a_browser(
    platform: Platform, console_dist: Path, tmp_path: Path, commands: Any
) -> None:
    token = await asyncio.to_thread(platform.provider.token, "seeder")
    async with httpx.AsyncClient(base_url=platform.registry, timeout=30) as http:
        seeder = Seeder(http, token)
        linked = await seeder.post(
            "acme",
            "/v1/models",
            {
                "name": "fraud-detector",
                "learning_type": "supervised",
                "functionality": "fraud detection",
                "tags": ["payments"],
                "description": "## Known limits\nNo B2B data.",
            },
        )
        system = await seeder.post(
            "acme", "/v1/systems", {"name": "checkout-risk", "risk_level": "high"}
        )
        await seeder.post(
            "acme",
            f"/v1/systems/{system['id']}/models",
            {"model_id": linked["id"], "description_of_use": "scores each payment"},
        )
        old = await seeder.post(
            "acme", "/v1/models", {"name": "old-model", "learning_type": "unsupervised"}
        )
        await seeder.post("acme", f"/v1/models/{old['id']}/archive", {})
        bulk = [f"{BULK}{i:03d}" for i in range(BULK_COUNT)]
        await seeder.models("acme", bulk)
        await seeder.models("bench", [f"bench-{i:04d}" for i in range(BENCH_MODELS)])
    await seed_usage(platform, linked["id"])
    project = await asyncio.to_thread(commands.project_zip, "openai_echo")
    deployment = await seed_device(platform, token, model_id=linked["id"], project=project)

    shots = os.environ.get("MODELYARD_CONSOLE_SCREENSHOTS")
    screenshots = str(REPO / shots) if shots else str(tmp_path / "screenshots")
    model_server = ModelServer()
    with model_server:
        output = await run_node(
            CONSOLE / "e2e" / "console.e2e.mjs",
            {
                "console_url": platform.console,
                "dev_console_url": platform.dev_console,
                "short_console_url": platform.short_console,
                "short_token_ttl_s": SHORT_TOKEN_TTL_S,
                "gateway_url": platform.gateway,
                "screenshots": screenshots,
                "seeded": {
                    "local_instance": "llama-box-1",
                    "local_port": model_server.port,
                    "cloud_instance": "openai-fallback",
                    # Nothing listens there: the gateway's health checks stay on loopback.
                    "cloud_url": f"http://127.0.0.1:{free_port()}/v1",
                    "cloud_token": CLOUD_TOKEN,
                    "group": "chat",
                    "device": DEVICE,
                    "second_device": SECOND_DEVICE,
                    "rollout_devices": list(ROLLOUT_DEVICES),
                    "usage": {
                        "requests": sum(u[1] for u in USAGE),
                        "errors": sum(u[2] for u in USAGE),
                        "tokens": sum(u[3] for u in USAGE),
                    },
                    "zips": project_zips(tmp_path, project),
                    "linked_model": "fraud-detector",
                    "system": "checkout-risk",
                    "archived_model": "old-model",
                    "bulk_prefix": BULK,
                    # the bulk models, fraud-detector (the archived one is not listed)
                    "total_models": BULK_COUNT + 1,
                    "reinforcement_count": sum(1 for i in range(BULK_COUNT) if i % 4 == 3),
                },
            },
            tmp_path,
            timeout=600,
        )
    assert_checks(output, EXPECTED_CHECKS)
    saved = await asyncio.to_thread(lambda: sorted(Path(screenshots).glob("*.png")))
    assert saved, "no screenshots saved"
    await assert_gateway_as_the_browser_left_it(platform, token)
    await assert_device_as_the_browser_left_it(platform, token, deployment["id"])
    await assert_deploy_as_the_browser_left_it(platform, token, linked["id"])
    await assert_rollouts_as_the_browser_left_it(platform, token)
    await assert_access_as_the_browser_left_it(platform, token, linked["id"])
    await assert_tokens_as_the_browser_left_it(platform, token)
    await assert_policy_as_the_browser_left_it(platform, token)

    bench = await run_node(
        CONSOLE / "bench" / "bench.mjs",
        {"console_url": platform.console, "login": "bencher", "dist": str(console_dist), "runs": 3},
        tmp_path,
        timeout=180,
    )
    print(bench)
    figures = json.loads(bench.strip().splitlines()[-1])
    # The budget for the initial JS; the times are printed (a busy CI box varies).
    assert figures["initial_js_gzip_bytes"] < 250 * 1024, bench
    assert figures["all_1000_listed_ms"] > 0, bench
