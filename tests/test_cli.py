"""The `modelyard` CLI and the Python SDK against the real services (issue 13, "Done means").

Registry, deployer and gateway run as processes on a fresh database and vhost, with one device
agent on the real Docker engine; the CLI runs as a subprocess with its own config file, exactly
as a person's shell would run it. Checked: outputs (table, json, yaml, -q) and exit codes (0, 1,
2), problem errors on one line with the invalid fields, a stale ETag, a wrong token, a missing
context, version push of a directory (honouring .modelyardignore and modelyard.yaml), deploy
followed live to running, a failed deploy (exit 1 with its log tail), logs, gateway groups,
keys and a streamed chat answer; the SDK's pagination and its retry of a create whose answer
was lost (one resource, not two).
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import stat
import sys
import uuid
import zipfile
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest
import yaml
from suite_testkit import (  # tests/ is on the path (conftest)
    Agent,
    Suite,
    openai_manifest,
    running_suite,
)

from modelyard_client import AsyncModelyard, Endpoints, Modelyard, RetryPolicy
from modelyard_client import operations as ops
from modelyard_common.outbox import asyncpg_dsn
from modelyard_testkit.testing import TEST_JWT_SECRET, wait_for

pytestmark = [pytest.mark.docker, pytest.mark.end_to_end]

CLI = str(Path(sys.executable).parent / "modelyard")
PROJECTS = Path(__file__).parent / "projects"
WORKSPACE = "cli"


@dataclass
class Result:
    """What a CLI run printed and how it exited."""

    code: int
    out: str
    err: str

    def json(self) -> Any:
        """Return stdout parsed as JSON."""
        return json.loads(self.out)


@dataclass
class CliWorld:
    """The running services, one agent, and a CLI config file logged in to them."""

    suite: Suite
    agent: Agent
    config: Path
    tmp: Path

    def env(self, **extra: str) -> dict[str, str]:
        """Return the CLI's environment: its own config file, nothing inherited that steers it."""
        base = {
            k: v
            for k, v in os.environ.items()
            if not k.startswith("MODELYARD_") or k.startswith("MODELYARD_TEST")
        }
        return {
            **base,
            "MODELYARD_CONFIG": str(self.config),
            "MODELYARD_JWT_SECRET": TEST_JWT_SECRET,
            **extra,
        }

    async def run(self, *args: str, timeout: float = 120, **env: str) -> Result:
        """Run `modelyard ARGS` and return its exit code and outputs."""
        process = await asyncio.create_subprocess_exec(
            CLI,
            *args,
            env=self.env(**env),
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        out, err = await asyncio.wait_for(process.communicate(), timeout)
        return Result(process.returncode or 0, out.decode(), err.decode())

    async def ok(self, *args: str, timeout: float = 120, **env: str) -> Result:
        """Run the CLI and assert it exited 0."""
        result = await self.run(*args, timeout=timeout, **env)
        assert result.code == 0, f"modelyard {' '.join(args)} -> {result.code}\n{result.err}"
        return result


def write_project(root: Path, *, main: str, manifest: dict[str, Any], extra: bool = True) -> Path:
    """Write a project directory with a modelyard.yaml and a .modelyardignore."""
    root.mkdir(parents=True)
    (root / "main.py").write_text(main)
    (root / "modelyard.yaml").write_text(yaml.safe_dump(manifest))
    if extra:
        (root / ".modelyardignore").write_text("# not shipped\nsecrets.env\ndata/raw/\n*.tmp\n")
        (root / "secrets.env").write_text("API_TOKEN=do-not-ship\n")
        (root / "data" / "raw").mkdir(parents=True)
        (root / "data" / "raw" / "big.bin").write_bytes(b"\0" * 1024)
        (root / "data" / "labels.txt").write_text("cat\ndog\n")
        (root / "scratch.tmp").write_text("x")
    return root


@pytest.fixture(scope="module")
async def world(commands: Any, tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[CliWorld]:
    """Return the services, one online agent and a CLI logged in with a dev token."""
    tmp = tmp_path_factory.mktemp("cli")
    async with running_suite(commands, tmp, workspace=WORKSPACE, kind=Suite) as suite:
        agent = await suite.start_agent(f"edge-{uuid.uuid4().hex[:6]}", {"site": "lab"})

        async def online() -> bool:
            page = await suite.get(f"{suite.deployer}/v1/devices?status=online")
            return agent.device_id in {d["id"] for d in page["items"]}

        await wait_for(online, timeout=120, interval=0.5)
        world = CliWorld(suite=suite, agent=agent, config=tmp / "cfg" / "config.yaml", tmp=tmp)
        await world.ok(
            *("login", "--dev", "--sub", "alice", "--role", "admin"),
            *("--workspace", WORKSPACE),
            *("--registry-url", suite.registry, "--deployer-url", suite.deployer),
            *("--gateway-url", suite.gateway),
        )
        yield world


async def test_login_writes_a_private_config_and_contexts_switch(world: CliWorld) -> None:
    mode = stat.S_IMODE(world.config.stat().st_mode)
    assert mode == 0o600, oct(mode)
    saved = yaml.safe_load(world.config.read_text())
    assert saved["current_context"] == "default"
    assert saved["contexts"]["default"]["registry_url"] == world.suite.registry

    listed = (await world.ok("context", "list", "-o", "json")).json()
    assert [(c["name"], c["current"], c["logged_in"]) for c in listed] == [("default", "*", True)]
    shown = await world.ok("context", "show", "-o", "json")
    assert "token" in shown.json()
    assert saved["contexts"]["default"]["token"] not in shown.out

    # A missing context is bad usage (2), named in one line; nothing is written.
    missing = await world.run("--context", "nope", "models", "list")
    assert missing.code == 2, missing
    assert "no context named 'nope'" in missing.err
    assert "known: default" in missing.err
    assert "Traceback" not in missing.err
    assert (await world.run("context", "use", "nope")).code == 2
    assert yaml.safe_load(world.config.read_text()) == saved


async def test_registry_round_trip_with_every_output_and_exit_code(world: CliWorld) -> None:
    suffix = uuid.uuid4().hex[:6]
    name = f"fraud-{suffix}"
    created = await world.ok(
        *("models", "create", name, "--learning-type", "supervised"),
        *("--functionality", "fraud detection", "--tag", "payments", "-q"),
    )
    model_id = created.out.strip()
    uuid.UUID(model_id)  # -q prints the id alone

    as_json = (await world.ok("models", "get", name, "-o", "json")).json()
    assert (as_json["id"], as_json["tags"]) == (model_id, ["payments"])
    as_yaml = yaml.safe_load((await world.ok("models", "get", model_id, "-o", "yaml")).out)
    assert as_yaml["name"] == name
    table = (await world.ok("models", "list", "--search", name)).out
    assert name in table
    assert "LEARNING TYPE" in table
    assert (await world.ok("models", "list", "--search", name, "-q")).out.split() == [model_id]

    system = f"helpdesk-{suffix}"
    await world.ok("systems", "create", system, "--risk-level", "limited", "-q")
    await world.ok("link", system, name, "--use", "scores each payment")
    uses = (await world.ok("models", "systems", name, "-o", "json")).json()
    assert [u["description_of_use"] for u in uses] == ["scores each payment"]

    # edit reads the ETag itself; a stale one (someone changed it since) is a clear conflict.
    stale = as_json["etag"]
    edited = await world.ok("models", "edit", name, "--set", "provider=in-house", "-o", "json")
    assert edited.json()["provider"] == "in-house"
    conflict = await world.run("models", "edit", name, "--set", "provider=x", "--if-match", stale)
    assert conflict.code == 1, conflict
    assert conflict.err.startswith("error: conflict:")
    assert stale in conflict.err
    assert len(conflict.err.strip().splitlines()) == 1
    assert (await world.ok("models", "get", name, "-o", "json")).json()["provider"] == "in-house"
    history = (await world.ok("models", "history", name, "-o", "json")).json()
    changes = [entry["changes"].get("provider") for entry in history]
    assert {"old": "", "new": "in-house"} in changes, history

    # Refused by the service: exit 1 with the problem on one line, the systems named.
    refused = await world.run("models", "delete", name, "--yes")
    assert refused.code == 1, refused
    assert refused.err.startswith("error: 409"), refused.err
    assert system in refused.err, refused.err
    await world.ok("unlink", system, name)
    await world.ok("models", "archive", name)
    assert (await world.ok("models", "list", "--search", name, "-q")).out.split() == []
    await world.ok("models", "unarchive", model_id)

    # Invalid fields come back as one line naming each field.
    invalid = await world.run("models", "create", f"bad-{suffix}", "--learning-type", "guessing")
    assert invalid.code == 1, invalid
    assert invalid.err.startswith("error: 422")
    assert "learning_type" in invalid.err
    assert len(invalid.err.strip().splitlines()) == 1


async def test_review_by_one_person_approval_by_another_and_the_policy(world: CliWorld) -> None:
    name = f"scorer-{uuid.uuid4().hex[:6]}"
    await world.ok("models", "create", name, "--learning-type", "supervised", "-q")
    asked = (await world.ok("models", "review", name, "-m", "card attached", "-o", "json")).json()
    assert (asked["state"], asked["requested_by"]) == ("in_review", "alice")
    own = await world.run("models", "approve", name, "-m", "mine")
    assert own.code == 1, own
    assert own.err.startswith("error: 403")  # four eyes, admin or not

    # A second person in a context of their own; `login` makes it the current one.
    await world.ok(
        *("--context", "bob", "login", "--dev", "--sub", "bob", "--role", "approver"),
        *("--workspace", WORKSPACE, "--registry-url", world.suite.registry),
    )
    restricted = await world.ok(
        *("models", "restrict", name, "-m", "pilot", "--conditions", "lab only"),
        *("--label", "site=lab", "--label", "site=plant", "--group", "chat", "-o", "json"),
    )
    assert restricted.json()["conditions"]["device_labels"] == {"site": ["lab", "plant"]}
    assert restricted.json()["decided_by"] == "bob"
    table = (await world.ok("models", "approval", name)).out
    assert "restricted" in table
    assert "lab only" in table
    blocked = await world.ok("models", "block", name, "-m", "bias", "-q")
    assert blocked.out.strip() == "blocked"
    bad = await world.run(
        *("models", "restrict", name, "-m", "x"), "--conditions", "y", "--label", "z"
    )
    assert bad.code == 2, bad
    await world.ok("context", "use", "default")
    await world.ok("context", "delete", "bob")  # other tests expect alice's context alone

    shown = (await world.ok("policy", "show", "-o", "json")).json()
    assert shown["workspace"] == WORKSPACE
    assert (await world.run("policy", "set", "maybe")).code == 2
    assert (await world.ok("policy", "set", "warn", "-m", "pilot", "-q")).out.strip() == "warn"
    assert (await world.ok("policy", "show", "-o", "json")).json()["is_default"] is False
    await world.ok("policy", "set", shown["gate"])  # back to what the other tests expect
    history = (await world.ok("models", "history", name, "-o", "json")).json()
    assert [(h["action"], h["actor"]) for h in history][1:] == [
        ("review_requested", "alice"),
        ("restricted", "bob"),
        ("blocked", "bob"),
    ]


async def test_bad_usage_exits_2_and_a_wrong_token_exits_1(world: CliWorld) -> None:
    for args in (
        ("models", "create", "x"),  # --learning-type missing
        ("models", "list", "--output", "xml"),
        ("models", "frobnicate"),
        ("deploy", "some-model"),  # neither --device nor --selector
        ("version", "push", "some-model", str(world.tmp / "does-not-exist")),
    ):
        result = await world.run(*args)
        assert result.code == 2, (args, result)
        assert "Traceback" not in result.err

    wrong = await world.run("models", "list", MODELYARD_TOKEN="not-a-token")
    assert wrong.code == 1, wrong
    assert wrong.err.startswith("error: 401")
    assert "modelyard login" in wrong.err

    # A fresh machine: no config file at all, so no token; the service says 401.
    fresh = await world.run(
        "models",
        "list",
        MODELYARD_CONFIG=str(world.tmp / "nothing" / "config.yaml"),
        MODELYARD_REGISTRY_URL=world.suite.registry,
    )
    assert fresh.code == 1, fresh
    assert "401" in fresh.err, fresh

    down = await world.run("models", "list", MODELYARD_REGISTRY_URL="http://127.0.0.1:9")
    assert down.code == 1, down
    assert "cannot reach" in down.err, down

    # `modelyard --help` and every group's help carry examples.
    for args in (("--help",), ("models", "create", "--help"), ("deploy", "--help")):
        assert "Examples" in (await world.ok(*args)).out


def id_cells(table: str) -> list[str]:
    """Return the first cell of each row of a table whose first column holds ids."""
    return [line.split()[0] for line in table.splitlines() if re.match(r"[0-9a-f]{8}", line)]


async def test_tables_fit_80_columns_with_short_ids_that_resolve(world: CliWorld) -> None:
    suffix = uuid.uuid4().hex[:6]
    model, system, device = f"short-{suffix}", f"desk-{suffix}", f"spare-{suffix}"
    await world.ok("models", "create", model, "--learning-type", "semi_supervised",
                   "--functionality", "answers questions about the catalogue, in four languages",
                   "--tag", "support", "--tag", "multilingual")  # fmt: skip
    await world.ok("systems", "create", system, "--risk-level", "limited", "--owner", "help desk")
    await world.ok("link", system, model, "--use", "drafts the first answer to each ticket")
    project = write_project(world.tmp / model, main="print('idle')\n", manifest=openai_manifest())
    pushed = await world.ok("version", "push", model, str(project), "--title", "a first cut", "-q")
    version_id = pushed.out.strip()
    # A device without an agent: its deployment stays pending, no container is started.
    await world.ok("devices", "register", device, "--label", f"spare={suffix}", "-q")
    target = f"{model}:{version_id[:8]}"  # MODEL:VERSION takes the start of a version's id
    await world.ok("deploy", target, "--selector", f"spare={suffix}", "--no-wait", "-q")
    instance, group, key = f"local-{suffix}", f"grp-{suffix}", f"key-{suffix}"
    await world.ok("instances", "create", instance, "--kind", "local", "--host", "127.0.0.1",
                   "--port", "9", "--upstream-model", "tiny", "-q")  # fmt: skip
    await world.ok("groups", "create", group, "--model", model, "-q")
    await world.ok("keys", "create", key, "--group", group, "-q")

    lists = {  # a list command, and how to show one of its items
        "models": (("models", "list"), ("models", "get")),
        "systems": (("systems", "list"), ("systems", "get")),
        "versions": (("version", "list", model), ("version", "get")),
        "deployments": (("deployments", "--model", model), ("deployments", "get")),
        "devices": (("devices",), ("devices", "get")),
        "groups": (("groups", "list"), ("groups", "get")),
        "instances": (("instances", "list"), ("instances", "get")),
        "keys": (("keys", "list"), ("keys", "get")),
    }
    for what, (listing, show) in lists.items():
        table = (await world.ok(*listing, COLUMNS="80")).out
        full = [item["id"] for item in (await world.ok(*listing, "-o", "json")).json()]
        assert full, what
        assert max(len(line) for line in table.splitlines()) <= 80, (what, table)
        assert id_cells(table) == [i[:8] for i in full], (what, table)  # one line, 8 characters
        wide = (await world.ok(*listing, "--wide", COLUMNS="80")).out
        assert id_cells(wide) == full, (what, wide)
        yaml_ids = [
            item["id"] for item in yaml.safe_load((await world.ok(*listing, "-o", "yaml")).out)
        ]
        assert yaml_ids == full, what
        shown = (await world.ok(*show, full[-1][:8], "-o", "json")).json()  # a prefix resolves
        assert shown["id"] == full[-1], what

    history = (await world.ok("models", "history", model, COLUMNS="80")).out
    uses = (await world.ok("models", "systems", model, COLUMNS="80")).out
    assert "drafts the first answer" in uses
    for table in (history, uses):
        assert max(len(line) for line in table.splitlines()) <= 80, table

    # An 8-character prefix acts on the right resource, wherever an id is taken.
    models = (await world.ok("models", "list", "-o", "json")).json()
    model_id = next(m["id"] for m in models if m["name"] == model)
    await world.ok("models", "edit", model_id[:8], "--set", "provider=in-house")
    assert (await world.ok("models", "get", model, "-o", "json")).json()["provider"] == "in-house"
    deployment = (await world.ok("deployments", "--model", model_id[:8], "-o", "json")).json()[0]
    assert "pending" in (await world.ok("logs", deployment["id"][:8])).out
    removed = (await world.ok("deployments", "remove", deployment["id"][:8], "-o", "json")).json()
    assert (removed["id"], removed["desired_state"]) == (deployment["id"], "removed"), removed
    assert deployment["version_id"] == version_id
    version = (await world.ok("version", "get", f"{model}:1", "-o", "json")).json()
    assert version["id"] == version_id
    device_id = (await world.ok("devices", "get", device, "-o", "json")).json()["id"]
    assert (await world.ok("devices", "delete", device_id[:8])).out.strip() == (
        f"revoked device {device_id}"
    )
    for kind, name in (("groups", group), ("instances", instance)):  # not left to other tests
        listed = (await world.ok(kind, "list", "-o", "json")).json()
        resource_id = next(item["id"] for item in listed if item["name"] == name)
        await world.ok(kind, "delete", resource_id[:8])
        left = {item["name"] for item in (await world.ok(kind, "list", "-o", "json")).json()}
        assert name not in left, (kind, left)
        assert len(left) == len(listed) - 1, (kind, left)


async def test_an_ambiguous_id_prefix_is_refused_with_its_candidates(world: CliWorld) -> None:
    suffix = uuid.uuid4().hex[:6]
    created = [
        (await world.ok("keys", "create", f"twin-{suffix}-{n}", "-o", "json")).json()
        for n in range(3)
    ]
    # Ids are the service's UUIDs; two that share their first 8 characters are made in the
    # gateway's database (a collision the API cannot be asked for).
    start = uuid.uuid4().hex[:8]
    twins = [f"{start}-{n * 1111:04d}-4000-8000-{uuid.uuid4().hex[:12]}" for n in (0, 1)]
    connection = await asyncpg.connect(asyncpg_dsn(world.suite.env["MODELYARD_DATABASE_URL"]))
    try:
        for key, twin in zip(created, twins, strict=False):
            await connection.execute(
                "UPDATE gateway.api_keys SET id = $1 WHERE id = $2",
                uuid.UUID(twin),
                uuid.UUID(key["id"]),
            )
    finally:
        await connection.close()

    table = (await world.ok("keys", "list", COLUMNS="80")).out
    shown = id_cells(table)
    assert f"{start}-0" in shown  # two ids share 9 characters: one more is shown, as git does
    assert f"{start}-1" in shown
    assert created[2]["id"][:8] in shown

    ambiguous = await world.run("keys", "get", start)
    assert ambiguous.code == 2, ambiguous
    lines = ambiguous.err.splitlines()
    assert lines[0] == f"error: '{start}' starts the ids of 2 keys: give more of the id", lines
    assert sorted(lines[1:]) == [f"  {twins[0]}  twin-{suffix}-0", f"  {twins[1]}  twin-{suffix}-1"]
    assert (await world.run("keys", "revoke", start)).code == 2  # nothing revoked

    second = (await world.ok("keys", "get", f"{start}-1", "-o", "json")).json()
    assert (second["id"], second["name"]) == (twins[1], f"twin-{suffix}-1")
    await world.ok("keys", "revoke", f"{start}-0")
    keys = {k["id"]: k for k in (await world.ok("keys", "list", "-o", "json")).json()}
    assert keys[twins[0]]["revoked_at"]
    assert not keys[twins[1]]["revoked_at"]
    assert not keys[created[2]["id"]]["revoked_at"]

    too_short = await world.run("keys", "get", start[:3])
    assert too_short.code == 1, too_short
    assert "an id prefix has at least 4 hex digits" in too_short.err, too_short


async def test_push_deploy_follow_logs_serve_and_chat(world: CliWorld) -> None:
    suffix = uuid.uuid4().hex[:6]
    model = f"echo-{suffix}"
    await world.ok("models", "create", model, "--learning-type", "supervised", "-q")
    source = (PROJECTS / "openai_echo" / "main.py").read_text()
    project = write_project(
        world.tmp / f"echo-{suffix}", main=source, manifest=openai_manifest(REPLY_PREFIX="cli")
    )

    pushed = await world.ok("version", "push", model, str(project), "--title", "v1", "-o", "json")
    version = pushed.json()
    assert version["number"] == 1
    assert version["title"] == "v1"
    assert version["manifest"]["env"] == {"REPLY_PREFIX": "cli"}
    async with httpx.AsyncClient() as http:
        artifact = await http.get(
            f"{world.suite.deployer}/v1/versions/{version['id']}/artifact",
            headers=world.suite.headers,
        )
    archive = world.tmp / f"{suffix}.zip"
    archive.write_bytes(artifact.content)
    with zipfile.ZipFile(archive) as shipped:
        names = sorted(shipped.namelist())
    # .modelyardignore kept the secret, the raw data and the scratch file out.
    assert names == [".modelyardignore", "data/labels.txt", "main.py", "modelyard.yaml"], names

    # Bound before the deployment runs (a group created later learns of running deployments
    # only with issue 9).
    group = f"echo-{suffix}"
    await world.ok("groups", "create", group, "--model", model, "-q")
    key = (await world.ok("keys", "create", f"ui-{suffix}", "--group", group, "-q")).out.strip()
    assert key.startswith("sk-")

    deployed = await world.run("deploy", model, "--device", world.agent.name, timeout=300)
    assert deployed.code == 0, deployed.err + deployed.out
    lines = deployed.out.splitlines()
    assert any(world.agent.name in line and "pending" in line for line in lines), lines
    assert any(world.agent.name in line and "running" in line for line in lines), lines
    assert lines[-1] == "1 of 1 running"

    deployments = (await world.ok("deployments", "--model", model, "-o", "json")).json()
    assert [(d["state"], d["device_name"]) for d in deployments] == [("running", world.agent.name)]
    deployment_id = deployments[0]["id"]
    logs = (await world.ok("logs", deployment_id)).out
    assert "pending" in logs
    assert "running" in logs
    devices = (await world.ok("devices", "-o", "json")).json()
    assert {d["name"]: d["status"] for d in devices}[world.agent.name] == "online"
    assert "LAST SEEN" in (await world.ok("devices")).out

    tries: list[Result] = []

    async def answered() -> Result | None:
        tries.append(await world.run("chat", group, "hello there", "--key", key))
        return tries[-1] if tries[-1].code == 0 else None

    try:
        chat = await wait_for(answered, timeout=60, interval=1)
    except TimeoutError:
        raise AssertionError(f"no chat answer in 60 s: {tries[-1]}") from None
    assert chat.out == "cli: hello there\n", repr(chat.out)  # no stray blank before the newline

    instances = (await world.ok("instances", "list", "-o", "json")).json()
    assert instances, "the gateway made no instance for the running deployment"
    check = await world.ok("instances", "check", instances[0]["id"], "-o", "json")
    assert check.json()["ok"] is True

    stopped = await world.ok("deployments", "stop", deployment_id, "-o", "json")
    assert stopped.json()["desired_state"] == "stopped"


async def test_a_failed_deploy_exits_1_with_the_log_tail(world: CliWorld) -> None:
    suffix = uuid.uuid4().hex[:6]
    model = f"broken-{suffix}"
    await world.ok("models", "create", model, "--learning-type", "supervised", "-q")
    crash = f"print('loading weights {suffix}', flush=True)\nraise SystemExit('weights missing')\n"
    project = write_project(world.tmp / model, main=crash, manifest=openai_manifest(), extra=False)
    await world.ok("version", "push", model, str(project), "-q")

    failed = await world.run("deploy", model, "--selector", "site=lab", timeout=300)
    assert failed.code == 1, failed.out + failed.err
    assert "failed" in failed.out
    assert f"loading weights {suffix}" in failed.err, failed.err
    assert "error: 1 of 1 deployments failed" in failed.err

    no_wait = await world.run("deploy", model, "--selector", "site=nowhere")
    assert no_wait.code == 1, no_wait
    assert "matches no device" in no_wait.err, no_wait


async def test_sdk_pages_and_retries_a_create_whose_answer_was_lost(world: CliWorld) -> None:
    # A letter first: an all-digit tag ("page-123456-once") parses as a signed number in
    # PostgreSQL's text search and drops the "once" (seen once: the search found all six).
    tag = f"page-x{uuid.uuid4().hex[:6]}"
    endpoints = Endpoints(
        registry_url=world.suite.registry,
        deployer_url=world.suite.deployer,
        gateway_url=world.suite.gateway,
        token=world.suite.headers["Authorization"].removeprefix("Bearer "),
    )
    async with AsyncModelyard(endpoints) as my:
        for n in range(5):
            body = {"name": f"{tag}-{n}", "learning_type": "supervised", "tags": [tag]}
            await my.send(ops.create_registry("models", body))
        pages = [p async for p in my.pages(ops.list_registry("models", tag=tag, limit=2))]
        assert [len(p["items"]) for p in pages] == [2, 2, 1]
        names = [m["name"] async for m in my.iterate(ops.list_registry("models", tag=tag, limit=2))]
        assert sorted(names) == [f"{tag}-{n}" for n in range(5)]

    class LoseFirstAnswer(httpx.HTTPTransport):
        """Delivers every request, but drops the answer of the first POST (a cut connection)."""

        def __init__(self) -> None:
            super().__init__()
            self.posts: list[str | None] = []

        def handle_request(self, request: httpx.Request) -> httpx.Response:
            response = super().handle_request(request)
            if request.method == "POST":
                self.posts.append(request.headers.get("idempotency-key"))
                if len(self.posts) == 1:
                    response.read()
                    raise httpx.ReadError("connection reset", request=request)
            return response

    transport = LoseFirstAnswer()
    retry = RetryPolicy(attempts=3, backoff_s=0.05)
    with Modelyard(endpoints, transport=transport, retry=retry) as my:
        model = my.send(
            ops.create_registry("models", {"name": f"{tag}-once", "learning_type": "supervised"})
        )
        assert len(transport.posts) == 2
        assert transport.posts[0] == transport.posts[1]
        assert transport.posts[0]
        found = my.send(ops.list_registry("models", q=f"{tag}-once"))
        assert [m["id"] for m in found["items"]] == [model["id"]]  # one model, not two

        # An action has no Idempotency-Key: a lost answer is not sent again.
        transport.posts.clear()
        from modelyard_client import TransportError

        with pytest.raises(TransportError):
            my.send(ops.archive_registry("models", model["id"]))
        assert len(transport.posts) == 1

        # An error carries the service's problem document.
        from modelyard_client import BadRequestError

        with pytest.raises(BadRequestError) as refused:
            my.send(ops.create_registry("models", {"name": "", "learning_type": "guessing"}))
        assert refused.value.problem["status"] == 422
        assert {f for f, _ in refused.value.field_errors} >= {"learning_type"}


async def test_key_limits_and_the_workspace_ceiling_from_the_cli(world: CliWorld) -> None:
    suffix = uuid.uuid4().hex[:6]
    created = (
        await world.ok(
            "keys", "create", f"limited-{suffix}", "--rpm", "60", "--tokens-per-day", "5000",
            "--expires", "2099-01-01T00:00:00Z", "-o", "json",
        )
    ).json()  # fmt: skip
    assert created["key"].startswith("sk-")
    assert created["limits"]["requests_per_minute"] == 60
    assert created["limits"]["tokens_per_day"] == 5000
    assert created["expires_at"].startswith("2099-01-01")

    # One limit changed, one lifted (0), the others kept; the ETag is read and sent for us.
    changed = (
        await world.ok("keys", "limits", f"limited-{suffix}", "--rpm", "0", "--tpm", "900",
                       "-o", "json")
    ).json()  # fmt: skip
    assert changed["limits"] == {
        "requests_per_minute": None,
        "tokens_per_minute": 900,
        "tokens_per_day": 5000,
        "tokens_per_month": None,
    }
    assert changed["etag"] != created["etag"]

    shown = (await world.ok("gateway", "limits", "-o", "json")).json()
    ceiling = (
        await world.ok("gateway", "limits", "--tokens-per-month", "100000000", "-o", "json")
    ).json()
    assert ceiling["tokens_per_month"] == 100000000
    assert ceiling["requests_per_minute"] == shown["requests_per_minute"]
    bad = await world.run("keys", "create", f"bad-{suffix}", "--expires", "next tuesday")
    assert bad.code == 1
    assert "expires_at" in bad.err
