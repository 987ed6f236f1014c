"""Secrets are write-only, follow their destination, and only operators say where traffic goes."""

from __future__ import annotations

import asyncio
import ipaddress
import json
import os
import re
import socket
import subprocess
import sys
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import asyncpg
import httpx
import pytest
from cryptography.fernet import Fernet
from gateway_testkit import Admin, FakeBackend, GatewayServer

from modelyard_common.db import make_engine
from modelyard_common.outbox import asyncpg_dsn
from modelyard_gateway import egress
from modelyard_gateway.crypto import SecretBox
from modelyard_gateway.egress import EgressPolicy, EgressRefused
from modelyard_gateway.routing.catalog import Catalog
from modelyard_testkit.testing import assert_problem

ORG_TOKEN = "sk-org-cloud-token-" + "7" * 20
HEADER_SECRET = "azure-api-key-" + "5" * 20
PROXY_PASSWORD = "proxy-pass-" + "3" * 20


async def _chat(gateway: GatewayServer, key: str, model: str) -> httpx.Response:
    async with httpx.AsyncClient(base_url=gateway.url, timeout=10) as client:
        return await client.post(
            "/v1/chat/completions",
            headers={"Authorization": f"Bearer {key}"},
            json={"model": model, "messages": [{"role": "user", "content": "hi"}]},
        )


def _carries_secret(headers: dict[str, str]) -> bool:
    blob = repr(headers)
    return ORG_TOKEN in blob or HEADER_SECRET in blob


async def _cloud_instance(admin: Admin, backend: FakeBackend, **fields: Any) -> dict[str, Any]:
    return await admin.instance(
        backend,
        kind="cloud",
        base_url=f"http://127.0.0.1:{backend.port}/v1",
        token=ORG_TOKEN,
        secret_headers={"api-key": HEADER_SECRET},
        **fields,
    )


async def test_redirected_instance_never_receives_the_token(
    gateway: GatewayServer, admin: Admin, backends: Callable[[str], FakeBackend]
) -> None:
    org, attacker = backends("org"), backends("attacker")
    inst = await _cloud_instance(admin, org)
    assert inst["has_token"]
    assert inst["has_secret_headers"]
    assert inst["secret_header_names"] == ["api-key"]
    group = f"g-{uuid.uuid4().hex[:6]}"
    await admin.group(group, [inst])
    key = await admin.key()
    assert (await _chat(gateway, key, group)).status_code == 200
    assert org.headers[-1]["Authorization"] == f"Bearer {ORG_TOKEN}"
    assert org.headers[-1]["api-key"] == HEADER_SECRET

    # An editor may not point it elsewhere at all.
    editor = Admin(gateway, workspace=admin.workspace, role="editor")
    try:
        current = (await admin.http.get(f"/v1/instances/{inst['id']}")).headers["ETag"]
        refused = await editor.http.patch(
            f"/v1/instances/{inst['id']}",
            json={"base_url": f"http://127.0.0.1:{attacker.port}/v1"},
            headers={"If-Match": current},
        )
        assert_problem(refused, 403)
    finally:
        await editor.close()

    # An operator may, but the sealed secrets stay with the old destination.
    moved = await admin.patch(
        f"/v1/instances/{inst['id']}",
        {"base_url": f"http://127.0.0.1:{attacker.port}/v1"},
        headers={"If-Match": current},
    )
    assert moved.status_code == 200, moved.text
    body = moved.json()
    assert body["has_token"] is False
    assert body["has_secret_headers"] is False
    assert body["secret_header_names"] == []
    assert (await _chat(gateway, key, group)).status_code == 200
    assert len(attacker.headers) == 1
    assert not _carries_secret(attacker.headers[0])
    check = await admin.http.post(f"/v1/instances/{inst['id']}/check")
    assert check.status_code == 200, check.text
    assert attacker.probe_headers
    assert not any(map(_carries_secret, attacker.probe_headers))

    # Moving back does not bring them back either; sending them again with the move does.
    back = await admin.patch(
        f"/v1/instances/{inst['id']}",
        {"base_url": f"http://127.0.0.1:{org.port}/v1", "token": "sk-new-" + "9" * 20},
        headers={"If-Match": body["etag"]},
    )
    assert back.json()["has_token"] is True
    assert back.json()["has_secret_headers"] is False
    assert (await _chat(gateway, key, group)).status_code == 200
    assert org.headers[-1]["Authorization"] == "Bearer sk-new-" + "9" * 20
    assert "api-key" not in org.headers[-1]


async def test_a_change_that_keeps_the_destination_keeps_the_secrets(
    gateway: GatewayServer, admin: Admin, backends: Callable[[str], FakeBackend]
) -> None:
    org = backends("org")
    inst = await _cloud_instance(admin, org)
    renamed = await admin.patch(
        f"/v1/instances/{inst['id']}",
        {"name": f"renamed-{uuid.uuid4().hex[:6]}", "read_timeout_s": 3.0},
        headers={"If-Match": inst["etag"]},
    )
    assert renamed.json()["has_token"]
    assert renamed.json()["has_secret_headers"]


async def test_editor_cannot_create_instances_or_keys(
    gateway: GatewayServer, admin: Admin, database_url: str
) -> None:
    editor = Admin(gateway, role="editor")
    try:
        body = {
            "name": "sneaky",
            "kind": "local",
            "host": "127.0.0.1",
            "port": 9,
            "upstream_model": "m",
        }
        assert_problem(await editor.http.post("/v1/instances", json=body), 403)
        assert_problem(await editor.http.post("/v1/keys", json={"name": "k"}), 403)
        # Editors still read them and manage groups.
        assert (await editor.http.get("/v1/instances")).status_code == 200
        assert (await editor.http.post("/v1/groups", json={"name": "g"})).status_code == 201
    finally:
        await editor.close()
    conn = await asyncpg.connect(asyncpg_dsn(database_url))
    try:
        for table in ("model_instances", "api_keys"):
            count = await conn.fetchval(
                f"SELECT count(*) FROM gateway.{table} WHERE workspace = $1", editor.workspace
            )
            assert count == 0, table
    finally:
        await conn.close()


@pytest.mark.parametrize(
    "fields",
    [
        pytest.param({"kind": "local", "host": "169.254.169.254", "port": 80}, id="aws-metadata"),
        pytest.param({"kind": "cloud", "base_url": "http://169.254.169.254/latest"}, id="cloud"),
        pytest.param({"kind": "cloud", "base_url": "http://[fd00:ec2::254]/v1"}, id="aws-ipv6"),
        pytest.param({"kind": "local", "host": "::ffff:169.254.169.254", "port": 80}, id="mapped"),
        pytest.param({"kind": "local", "host": "fe80::1", "port": 8080}, id="link-local-v6"),
        pytest.param(
            {"kind": "cloud", "base_url": "http://metadata.google.internal/v1"}, id="gcp-name"
        ),
        pytest.param(
            {
                "kind": "cloud",
                "base_url": "https://api.openai.com/v1",
                "proxy_url": "http://169.254.169.254:3128",
            },
            id="proxy",
        ),
    ],
)
async def test_metadata_and_link_local_destinations_are_refused(
    admin: Admin, database_url: str, fields: dict[str, Any]
) -> None:
    body = {"name": f"meta-{uuid.uuid4().hex[:6]}", "upstream_model": "m", **fields}
    problem = assert_problem(await admin.http.post("/v1/instances", json=body), 422)
    error = problem["errors"][0]
    if ":" in str(fields.get("host", "")) or "[" in str(fields.get("base_url", "")):
        # IPv6 literals are refused before the egress policy: hosts are DNS names or IPv4.
        assert error["field"] in {"host", "base_url"}
    else:
        assert error["type"] == "egress_refused"
    conn = await asyncpg.connect(asyncpg_dsn(database_url))
    try:
        count = await conn.fetchval(
            "SELECT count(*) FROM gateway.model_instances WHERE workspace = $1", admin.workspace
        )
    finally:
        await conn.close()
    assert count == 0


async def test_an_instance_cannot_be_moved_to_the_metadata_service(
    admin: Admin, backends: Callable[[str], FakeBackend]
) -> None:
    inst = await admin.instance(backends("b"))
    refused = await admin.http.patch(
        f"/v1/instances/{inst['id']}",
        json={"host": "169.254.169.254"},
        headers={"If-Match": inst["etag"]},
    )
    assert_problem(refused, 422)
    after = (await admin.http.get(f"/v1/instances/{inst['id']}")).json()
    assert after["host"] == "127.0.0.1"
    assert after["etag"] == inst["etag"]


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"proxy_url": "http://user:pw@127.0.0.1:3128"}, "proxy_url"),
        ({"proxy_url": "http://user@127.0.0.1:3128"}, "proxy_url"),
        ({"extra_headers": {"x-api-key": "k"}}, "extra_headers"),
        ({"extra_headers": {"Authorization": "Bearer k"}}, "extra_headers"),
        ({"secret_headers": {"Authorization": "Bearer k"}}, "secret_headers"),
    ],
)
async def test_credentials_outside_the_sealed_fields_are_refused(
    admin: Admin, fields: dict[str, Any], field: str
) -> None:
    body = {
        "name": f"c-{uuid.uuid4().hex[:6]}",
        "kind": "cloud",
        "base_url": "https://api.example.com/v1",
        "upstream_model": "m",
        **fields,
    }
    problem = assert_problem(await admin.http.post("/v1/instances", json=body), 422)
    assert problem["errors"][0]["field"].startswith(field), problem


async def test_egress_allow_and_deny_lists_check_every_resolved_address() -> None:
    deny_loopback = EgressPolicy.parse(allow=[], deny=["127.0.0.0/8", "evil.example"])
    with pytest.raises(EgressRefused, match="EGRESS_DENY"):
        await deny_loopback.check_host("localhost")  # a name, refused by what it resolves to
    with pytest.raises(EgressRefused, match="EGRESS_DENY"):
        await deny_loopback.check_url("https://EVIL.example./v1")
    await deny_loopback.check_host("10.1.2.3")

    only_private = EgressPolicy.parse(allow=["10.0.0.0/8", ".corp.example"], deny=[])
    await only_private.check_host("10.9.9.9")
    await only_private.check_host("llm.corp.example")  # allowed by name (it need not resolve)
    with pytest.raises(EgressRefused, match="EGRESS_ALLOW"):
        await only_private.check_host("localhost")
    with pytest.raises(EgressRefused, match="metadata"):  # never allowed, whatever the lists say
        await EgressPolicy.parse(allow=["169.254.0.0/16"], deny=[]).check_host("169.254.169.254")


class _Resolver:
    """The system resolver as the gateway sees it (outside the product): answers, counted."""

    def __init__(self, answers: dict[str, list[Any]], delay: float = 0.0) -> None:
        self.answers, self.delay, self.asked = answers, delay, 0

    async def getaddrinfo(self, host: str, port: int, **_: Any) -> list[Any]:
        self.asked += 1
        await asyncio.sleep(self.delay)
        answer = self.answers[host]
        if isinstance(answer, list) and answer and isinstance(answer[0], OSError):
            raise answer.pop(0)
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (address, port)) for address in answer]


@pytest.fixture
def resolver(monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[..., _Resolver]]:
    egress.forget_answers()

    def make(answers: dict[str, list[Any]], delay: float = 0.0) -> _Resolver:
        fake = _Resolver(answers, delay)
        monkeypatch.setattr(asyncio.get_running_loop(), "getaddrinfo", fake.getaddrinfo)
        return fake

    yield make
    egress.forget_answers()


async def test_a_burst_of_checks_of_one_name_asks_the_resolver_once(
    resolver: Callable[..., _Resolver],
) -> None:
    # A catalog load checks every instance at once; each replica loads on every change.
    fake = resolver({"llm.lan": ["10.0.0.7"]}, delay=0.05)
    policy = EgressPolicy.parse(allow=[], deny=["10.0.0.7/32"])
    results = await asyncio.gather(
        *(policy.check_host("llm.lan", 8000) for _ in range(50)), return_exceptions=True
    )
    assert all(isinstance(r, EgressRefused) for r in results)  # each checked the address
    assert fake.asked == 1
    assert await egress.resolve("llm.lan", 8000) == [ipaddress.ip_address("10.0.0.7")]
    assert fake.asked == 1  # kept
    egress.forget_answers()  # what RESOLVE_TTL_S later does
    await egress.resolve("llm.lan", 8000)
    assert fake.asked == 2


async def test_no_such_name_is_kept_and_a_resolver_failure_is_asked_again(
    resolver: Callable[..., _Resolver],
) -> None:
    gone = socket.gaierror(socket.EAI_NONAME, "Name or service not known")
    timed_out = socket.gaierror(socket.EAI_AGAIN, "Temporary failure in name resolution")
    fake = resolver({"gone.lan": [gone], "flaky.lan": [timed_out, "10.0.0.8"]})
    for _ in range(3):
        assert await egress.resolve("gone.lan", 80) == []
    assert fake.asked == 1
    assert await egress.resolve("flaky.lan", 80) == []  # the resolver failed: not an answer
    assert await egress.resolve("flaky.lan", 80) == [ipaddress.ip_address("10.0.0.8")]
    assert await egress.resolve("flaky.lan", 80) == [ipaddress.ip_address("10.0.0.8")]
    assert fake.asked == 3


async def test_a_caller_going_away_does_not_cancel_the_shared_lookup(
    resolver: Callable[..., _Resolver],
) -> None:
    fake = resolver({"slow.lan": ["10.0.0.9"]}, delay=0.2)
    leaving = asyncio.create_task(egress.resolve("slow.lan", 80))
    staying = asyncio.create_task(egress.resolve("slow.lan", 80))
    await asyncio.sleep(0.05)
    leaving.cancel()
    assert await staying == [ipaddress.ip_address("10.0.0.9")]
    assert leaving.cancelled()
    assert fake.asked == 1


async def test_catalog_leaves_out_instances_the_policy_refuses(
    gateway: GatewayServer, admin: Admin, database_url: str, backends: Callable[[str], FakeBackend]
) -> None:
    inst = await admin.instance(backends("b"), host="localhost")
    engine = make_engine(database_url, pool_size=1)
    box = SecretBox(gateway.settings.encryption_key)
    try:
        refusing = Catalog(engine, box, egress=EgressPolicy.parse(allow=[], deny=["127.0.0.0/8"]))
        await refusing.reload()
        assert uuid.UUID(inst["id"]) not in refusing.snapshot.instances
        allowing = Catalog(engine, box, egress=EgressPolicy.parse(allow=[], deny=[]))
        await allowing.reload()
        assert uuid.UUID(inst["id"]) in allowing.snapshot.instances
    finally:
        await engine.dispose()


async def test_no_get_route_returns_a_stored_secret(
    gateway: GatewayServer, admin: Admin, backends: Callable[[str], FakeBackend]
) -> None:
    backend = backends("b")
    # Straight to the API (no wait for the routing catalog): only what is stored matters here.
    created = await admin.http.post(
        "/v1/instances",
        json={
            "name": f"walk-{uuid.uuid4().hex[:6]}",
            "kind": "cloud",
            "base_url": f"http://127.0.0.1:{backend.port}/v1",
            "token": ORG_TOKEN,
            "secret_headers": {"api-key": HEADER_SECRET},
            "proxy_url": f"http://127.0.0.1:{backend.port}",
            "proxy_username": "proxy-user",
            "proxy_password": PROXY_PASSWORD,
            "upstream_model": "m",
            "health_path": "",
        },
    )
    assert created.status_code == 201, created.text
    inst = created.json()
    made_group = await admin.http.post(
        "/v1/groups", json={"name": f"g-{uuid.uuid4().hex[:6]}", "instance_ids": [inst["id"]]}
    )
    assert made_group.status_code == 201, made_group.text
    group = made_group.json()
    created_key = await admin.http.post("/v1/keys", json={"name": "walk", "groups": None})
    assert created_key.status_code == 201, created_key.text
    api_key = created_key.json()["key"]
    secrets = [ORG_TOKEN, HEADER_SECRET, PROXY_PASSWORD, api_key]
    ids = {
        "instance_id": inst["id"],
        "group_id": group["id"],
        "key_id": created_key.json()["id"],
        "model_id": group["name"],  # OpenAI's GET /v1/models/{model}: a group name
    }
    walked = []
    # Every GET route the app documents (the OpenAPI document is itself walked, as /openapi.json).
    paths = ["/openapi.json"] + [
        path for path, operations in gateway.app.openapi()["paths"].items() if "get" in operations
    ]
    for path in paths:
        names = re.findall(r"{(\w+)}", path)
        assert set(names) <= set(ids), f"no value for the parameters of {path}"
        url = path.format(**ids)
        for auth in ({}, {"Authorization": f"Bearer {api_key}"}):
            response = await admin.http.get(url, headers=auth or None)
            assert response.status_code < 500, (url, response.text)
            for secret in secrets:
                assert secret not in response.text, (url, "leaks a secret")
                assert secret not in repr(response.headers), (url, "leaks a secret")
        walked.append(path)
    assert {"/v1/instances", "/v1/instances/{instance_id}", "/v1/keys", "/v1/models"} <= set(walked)
    assert len(walked) >= 10, walked


async def test_replayed_key_create_withholds_the_key_and_says_so(
    admin: Admin, database_url: str
) -> None:
    headers = {"Idempotency-Key": f"k-{uuid.uuid4().hex}"}
    first = await admin.post("/v1/keys", {"name": "once", "groups": None}, headers=headers)
    assert first.status_code == 201
    assert first.json()["key"].startswith("sk-my-")
    again = await admin.http.post(
        "/v1/keys", json={"name": "once", "groups": None}, headers=headers
    )
    assert again.status_code == 201
    assert again.json()["id"] == first.json()["id"]
    assert again.json()["key"] is None
    assert again.headers["Idempotent-Replayed"] == "true"
    assert again.headers["Idempotent-Secret-Withheld"] == "key"
    conn = await asyncpg.connect(asyncpg_dsn(database_url))
    try:
        bodies = await conn.fetch(
            "SELECT body::text AS body FROM gateway.idempotency_keys WHERE workspace = $1",
            admin.workspace,
        )
    finally:
        await conn.close()
    assert bodies
    assert all(first.json()["key"] not in row["body"] for row in bodies)


def test_rotated_encryption_key_still_opens_old_secrets() -> None:
    old, new = Fernet.generate_key().decode(), Fernet.generate_key().decode()
    sealed_old = SecretBox(old).seal("s3cret")
    rotated = SecretBox(f"{new},{old}")
    assert rotated.open(sealed_old) == "s3cret"
    assert not rotated.is_current(sealed_old)
    resealed = rotated.reseal(sealed_old)
    assert SecretBox(new).open(resealed) == "s3cret"
    with pytest.raises(ValueError, match="cannot be decrypted"):
        SecretBox(new).open(sealed_old)


async def _reseal(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """Run `modelyard-gateway reseal` with this environment."""
    return await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-c", "from modelyard_gateway.cli import main; main(['reseal'])"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


async def test_reseal_command_moves_every_secret_to_the_new_key(
    gateway: GatewayServer, admin: Admin, database_url: str, backends: Callable[[str], FakeBackend]
) -> None:
    old = gateway.settings.encryption_key
    inst = await _cloud_instance(admin, backends("b"))
    # As earlier versions kept it: a credential among the plain headers. Readers never see it.
    legacy = "legacy-key-" + "4" * 20
    conn = await asyncpg.connect(asyncpg_dsn(database_url))
    try:
        await conn.execute(
            "UPDATE gateway.model_instances SET extra_headers = $1::jsonb WHERE id = $2",
            json.dumps({"x-api-key": legacy, "X-Org": "acme"}),
            uuid.UUID(inst["id"]),
        )
    finally:
        await conn.close()
    shown = (await admin.http.get(f"/v1/instances/{inst['id']}")).json()
    assert shown["extra_headers"] == {"x-api-key": "********", "X-Org": "acme"}
    new = Fernet.generate_key().decode()
    env = {
        **os.environ,
        "MODELYARD_DATABASE_URL": database_url,
        "MODELYARD_GATEWAY_ENCRYPTION_KEY": f"{new},{old}",
    }
    done = await _reseal(env)
    assert done.returncode == 0, done.stderr
    assert "re-sealed" in done.stdout
    conn = await asyncpg.connect(asyncpg_dsn(database_url))
    try:
        rows = await conn.fetch(
            "SELECT token_sealed, secret_headers_sealed FROM gateway.model_instances "
            "WHERE token_sealed IS NOT NULL OR secret_headers_sealed IS NOT NULL"
        )
        mine = await conn.fetchrow(
            "SELECT token_sealed FROM gateway.model_instances WHERE id = $1",
            uuid.UUID(inst["id"]),
        )
    finally:
        await conn.close()
    only_new = SecretBox(new)
    assert rows
    for row in rows:  # every stored secret, of every workspace, opens with the new key alone
        for sealed in row:
            if sealed is not None:
                only_new.open(sealed)
    assert only_new.open(mine["token_sealed"]) == ORG_TOKEN
    moved = (await admin.http.get(f"/v1/instances/{inst['id']}")).json()
    assert moved["extra_headers"] == {"X-Org": "acme"}
    assert moved["secret_header_names"] == ["api-key", "x-api-key"]
    assert legacy not in repr(moved)
    # Put the old key back first for the rest of the suite (the gateway keeps the old one).
    again = await _reseal({**env, "MODELYARD_GATEWAY_ENCRYPTION_KEY": f"{old},{new}"})
    assert again.returncode == 0, again.stderr


async def test_check_resolves_again_and_refuses_what_the_policy_now_denies(
    gateway: GatewayServer, admin: Admin, backends: Callable[[str], FakeBackend]
) -> None:
    backend = backends("b")
    inst = await admin.instance(backend, host="localhost")
    runtime = gateway.runtime
    allowed = runtime.egress
    runtime.egress = EgressPolicy.parse(allow=[], deny=["127.0.0.0/8"])
    try:
        refused = await admin.http.post(f"/v1/instances/{inst['id']}/check")
        assert_problem(refused, 422)
        assert backend.health_checks == 0
    finally:
        runtime.egress = allowed
    checked = await admin.http.post(f"/v1/instances/{inst['id']}/check")
    assert checked.json()["ok"] is True
    assert backend.health_checks == 1
