"""Issue 18, the gateway's seams: tried as an attacker inside a workspace would.

1. A stored token goes only where an admin pointed the instance: a health path is a path, part
   of the destination, and prod's egress rules refuse loopback before any connection.
3. Governance is judged per instance: a deployment's instance in an unbound group serves its
   model only while that model may be served in that group.
6. Idempotent replays are authorized like a fresh request; another secret is another request.
9. NaN, Infinity and 1e309 in an instance's numbers are a 422 naming the field, never a 5xx.

Each test reports its counts (probes, 5xx, secrets a listening server saw, gate bypasses).
"""

from __future__ import annotations

import asyncio
import random
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import asyncpg
import httpx
import pytest
from gateway_policy_kit import (
    bind,
    choose_gate,
    model,
    projected,
    say,
)
from gateway_testkit import Admin, FakeBackend, GatewayServer, eventually

from modelyard_common.contracts import ENDPOINT_READY, EVENTS_EXCHANGE
from modelyard_common.events import new_event
from modelyard_common.messaging import Broker
from modelyard_common.outbox import asyncpg_dsn
from modelyard_gateway.destination import DestinationError, check_path, join
from modelyard_gateway.egress import EgressPolicy, EgressRefused, connect_guard
from modelyard_gateway.routing.catalog import fast_target
from modelyard_gateway.routing.fastclient import ConnectFailed, FastClient
from modelyard_gateway.settings import GatewaySettings
from modelyard_testkit.testing import assert_problem, wait_for

CLOUD_TOKEN = "sk-seam-cloud-token-" + uuid.uuid4().hex
HEADER_SECRET = "seam-api-key-" + uuid.uuid4().hex
PROXY_PASSWORD = "seam-proxy-pass-" + uuid.uuid4().hex


class Listener:
    """A TCP server on loopback that records the head of every request sent to it."""

    def __init__(self) -> None:
        self.heads: list[bytes] = []
        self.connections = 0
        self.port = 0
        self._server: asyncio.Server | None = None

    async def start(self, port: int = 0) -> Listener:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", port)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            self.heads.append(await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5))
            writer.write(
                b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                b"Content-Length: 2\r\nConnection: close\r\n\r\n{}"
            )
            await writer.drain()
        except (OSError, asyncio.IncompleteReadError, TimeoutError):
            pass
        finally:
            writer.close()

    def secrets_seen(self, *secrets: str) -> int:
        return sum(secret.encode() in head for head in self.heads for secret in secrets)

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()


async def _listener_on_1xxxx() -> Listener:
    """Return a listener on a port 1NNNN: `:1` + `NNNN/...` concatenated reaches it."""
    for _ in range(50):
        try:
            return await Listener().start(random.randint(10000, 19999))
        except OSError:
            continue
    raise RuntimeError("no free port between 10000 and 19999")


@pytest.fixture
async def listener() -> AsyncIterator[Listener]:
    found = await _listener_on_1xxxx()
    yield found
    await found.stop()


async def _answer(request: Awaitable[httpx.Response]) -> httpx.Response:
    """Return the answer; a connection the server dropped counts as a 5xx (599)."""
    try:
        return await request
    except httpx.TransportError as exc:
        return httpx.Response(599, text=f"transport error: {type(exc).__name__}")


async def _create(admin: Admin, body: dict[str, Any]) -> dict[str, Any]:
    made = await admin.post("/v1/instances", body)
    assert made.status_code == 201, made.text
    created: dict[str, Any] = made.json()
    return created


def _cloud(base_url: str, **extra: Any) -> dict[str, Any]:
    return {
        "name": f"cloud-{uuid.uuid4().hex[:8]}",
        "kind": "cloud",
        "base_url": base_url,
        "token": CLOUD_TOKEN,
        "secret_headers": {"api-key": HEADER_SECRET},
        "upstream_model": "m",
        "connect_timeout_s": 1.0,
        **extra,
    }


# --- 1. A stored cloud token goes to any host -------------------------------------------------


async def test_a_health_path_cannot_carry_the_token_to_another_host(
    gateway: GatewayServer,
    admin: Admin,
    listener: Listener,
    secret_watch: Any,
    adversarial_tally: Any,
    database_url: str,
) -> None:
    secret_watch.add(CLOUD_TOKEN, HEADER_SECRET)
    tail = str(listener.port)[1:]  # "http://127.0.0.1:1" + "8999/v1/models" -> port 18999
    victim = await _create(admin, _cloud("http://127.0.0.1:1/v1"))
    # ".evil.example/" onto a host name: "http://127.0.0" + ".1:PORT/..." is 127.0.0.1:PORT.
    dotted = await _create(admin, _cloud("http://127.0.0/v1"))
    attacks = [
        (victim, f"{tail}/v1/models"),
        (victim, f"@127.0.0.1:{listener.port}/x"),
        (dotted, f".1:{listener.port}/v1/models"),
        (victim, f"//127.0.0.1:{listener.port}/v1/models"),
        (victim, "/../../x"),
        (victim, "/v1/models?x=@127.0.0.1"),
        (victim, "/v1\\models"),
    ]
    probes = server_errors = 0
    refusals: list[httpx.Response] = []
    for number, (inst, path) in enumerate(attacks):
        current = (await admin.http.get(f"/v1/instances/{inst['id']}")).json()
        patched = await _answer(
            admin.http.patch(
                f"/v1/instances/{inst['id']}",
                json={"health_path": path},
                headers={"If-Match": current["etag"]},
            )
        )
        probes += 1
        server_errors += patched.status_code >= 500
        if number < 3:  # the three: then ask for a check (it would carry the token)
            check = await _answer(admin.http.post(f"/v1/instances/{inst['id']}/check"))
            probes += 1
            server_errors += check.status_code >= 500
        created = await _answer(
            admin.http.post("/v1/instances", json=_cloud("http://127.0.0.1:1/v1", health_path=path))
        )
        probes += 1
        server_errors += created.status_code >= 500
        refusals += [patched, created]

    # A row stored before paths were checked is refused before any connection, by `/check` and
    # by the background probes alike (they run every 0.3 s here).
    conn = await asyncpg.connect(asyncpg_dsn(database_url))
    try:
        await conn.execute(
            "UPDATE gateway.model_instances SET health_path = $1 WHERE id = $2",
            f"{tail}/v1/models",
            uuid.UUID(victim["id"]),
        )
        before = gateway.catalog_version()
        await conn.execute("SELECT pg_notify('gateway_config', '')")
        await eventually(lambda: gateway.catalog_version() > before)
    finally:
        await conn.close()
    stored = await _answer(admin.http.post(f"/v1/instances/{victim['id']}/check"))
    probes += 1
    await asyncio.sleep(1.0)

    seen = listener.secrets_seen(CLOUD_TOKEN, HEADER_SECRET)
    adversarial_tally.add(probes=probes, server_errors=server_errors, secrets_seen=seen)
    for refusal in refusals:
        assert_problem(refusal, 422, "health_path")
    assert_problem(stored, 422)
    assert listener.connections == 0
    assert seen == 0
    assert server_errors == 0


async def test_health_path_is_destination_admins_only_and_drops_secrets(
    gateway: GatewayServer,
    admin: Admin,
    backends: Callable[[str], FakeBackend],
    secret_watch: Any,
    adversarial_tally: Any,
) -> None:
    secret_watch.add(CLOUD_TOKEN, HEADER_SECRET)
    backend = backends("health-path")
    inst = await _create(admin, _cloud(f"http://127.0.0.1:{backend.port}/v1"))
    assert inst["has_token"]
    assert inst["has_secret_headers"]
    operator = Admin(gateway, workspace=admin.workspace, role="operator")
    try:
        refused = await operator.http.patch(
            f"/v1/instances/{inst['id']}",
            json={"health_path": "/v1/other"},
            headers={"If-Match": inst["etag"]},
        )
        assert_problem(refused, 403)
        # An operator still runs the instance: its non-destination fields, checks.
        calmer = await operator.http.patch(
            f"/v1/instances/{inst['id']}",
            json={"read_timeout_s": 9.0},
            headers={"If-Match": inst["etag"]},
        )
        assert calmer.status_code == 200, calmer.text
        assert calmer.json()["has_token"] is True
    finally:
        await operator.close()
    moved = await admin.patch(
        f"/v1/instances/{inst['id']}",
        {"health_path": "/v1/models"},
        headers={"If-Match": calmer.json()["etag"]},
    )
    assert moved.status_code == 200, moved.text
    # Before the move the backend was the instance's own (its probes carried the secrets); a
    # probe sent just before the move ends within the health timeout (0.5 s here).
    await asyncio.sleep(0.8)
    probed, asked = len(backend.probe_headers), len(backend.headers)
    assert moved.json()["has_token"] is False
    assert moved.json()["has_secret_headers"] is False
    check = await admin.http.post(f"/v1/instances/{inst['id']}/check")
    assert check.status_code == 200, check.text
    assert check.json()["url"] == f"http://127.0.0.1:{backend.port}/v1/models"
    assert check.json()["ok"] is True
    seen = sum(
        CLOUD_TOKEN in repr(h) or HEADER_SECRET in repr(h)
        for h in backend.probe_headers[probed:] + backend.headers[asked:]
    )
    adversarial_tally.add(probes=3, secrets_seen=seen)
    assert seen == 0


@pytest.mark.parametrize(
    "path",
    [
        "8999/v1/models",
        "@127.0.0.1:18999/x",
        ".evil.example/",
        "//evil.example/x",
        "/a/../b",
        "/a/./b",
        "/..",
        "/a%2f..%2fb",
        "/a%40evil",
        "/a?b",
        "/a#b",
        "/a\\b",
        "/a b",
        "/a\tb",
        "/a\nb",
        "/a@b",
    ],
)
def test_a_path_that_is_not_a_path_is_refused_and_never_joined(path: str) -> None:
    with pytest.raises(DestinationError):
        check_path(path)
    with pytest.raises(DestinationError):
        join("http://127.0.0.1:1/v1", path)


def test_joining_keeps_the_base_host_and_port() -> None:
    assert join("http://127.0.0.1:1", "/v1/models") == "http://127.0.0.1:1/v1/models"
    assert join("https://api.example.com/v1/", "/models") == "https://api.example.com/v1/models"
    assert join("http://h:8/p", "") == "http://h:8/p"
    with pytest.raises(DestinationError):
        join("http://user@h:8/p", "/x")


async def test_prod_egress_default_refuses_loopback_link_local_and_private_for_cloud() -> None:
    prod = GatewaySettings(env="prod").egress_policy()
    dev = GatewaySettings(env="dev").egress_policy()
    assert prod.strict
    assert not dev.strict
    refused = [
        ("local", "127.0.0.1"),
        ("local", "127.1.2.3"),
        ("local", "::1"),
        ("local", "::ffff:127.0.0.1"),
        ("local", "0.0.0.0"),
        ("local", "169.254.169.254"),
        ("local", "localhost"),
        ("cloud", "10.1.2.3"),
        ("cloud", "192.168.1.1"),
        ("cloud", "172.16.0.9"),
        ("cloud", "100.64.0.1"),
        ("cloud", "fd00::1"),
        ("cloud", "127.0.0.1"),
        ("local", "224.0.0.1"),
    ]
    for kind, host in refused:
        with pytest.raises(EgressRefused):
            await prod.check_host(host, 80, kind=kind)
    for kind, host in [("local", "10.1.2.3"), ("local", "192.168.1.1"), ("local", "fd00::1")]:
        await prod.check_host(host, 80, kind=kind)
    await prod.check_host("93.184.216.34", 443, kind="cloud")
    # In dev, loopback model servers stay reachable (what these tests run against).
    await dev.check_host("127.0.0.1", 80, kind="local")
    # An admin narrows the local networks; an explicit allow exempts from prod's rules.
    narrow = EgressPolicy.parse(allow=[], deny=[], strict=True, local_networks=["10.0.0.0/8"])
    with pytest.raises(EgressRefused):
        await narrow.check_host("192.168.1.1", 80, kind="local")
    allowed = EgressPolicy.parse(allow=["127.0.0.1/32"], deny=[], strict=True)
    await allowed.check_host("127.0.0.1", 80, kind="local")
    with pytest.raises(EgressRefused):  # never link-local, whatever the allow list says
        await EgressPolicy.parse(allow=["169.254.0.0/16"], deny=[], strict=True).check_host(
            "169.254.169.254"
        )
    # A proxy is judged as a local address: loopback refused for a cloud instance's proxy too.
    with pytest.raises(EgressRefused):
        await prod.check_instance(
            kind="cloud",
            host=None,
            port=None,
            base_url="https://93.184.216.34/v1",
            proxy_url="http://127.0.0.1:3128",
        )


async def test_every_new_upstream_connection_is_checked_where_it_goes(
    listener: Listener, adversarial_tally: Any
) -> None:
    # Between two catalog loads a name may come to resolve to loopback (DNS rebinding): the lean
    # client checks the address of each new connection and connects to the address it checked.
    strict = EgressPolicy.parse(allow=[], deny=[], strict=True)
    dev = EgressPolicy.parse(allow=[], deny=[])
    headers = {"Authorization": f"Bearer {CLOUD_TOKEN}"}
    client = FastClient(guard=connect_guard(strict))
    refused = 0
    try:
        for host in ("localhost", "127.0.0.1"):
            target = fast_target(f"http://{host}:{listener.port}", headers, kind="cloud")
            assert target is not None
            with pytest.raises(ConnectFailed):
                await client.post(target, "/v1/models", b"{}", connect_timeout=1, read_timeout=1)
            refused += 1
    finally:
        client.close()
    adversarial_tally.add(probes=2, secrets_seen=listener.secrets_seen(CLOUD_TOKEN))
    assert refused == 2
    assert listener.connections == 0
    assert await connect_guard(dev)("localhost", 80, "local") in ("127.0.0.1", "::1")
    with pytest.raises(OSError, match="egress"):
        await connect_guard(dev)("169.254.169.254", 80, "local")


@pytest.fixture(scope="module")
def strict_gateway(make_settings: Callable[..., GatewaySettings], gateway: GatewayServer) -> Any:
    """A replica with prod's egress rules (the rest of prod needs an OIDC issuer)."""
    server = GatewayServer(make_settings(egress_strict=True, consume_events=False)).start()
    yield server
    server.stop()


async def test_prod_egress_refuses_before_any_connection_in_one_shape(
    gateway: GatewayServer,
    strict_gateway: GatewayServer,
    admin: Admin,
    listener: Listener,
    secret_watch: Any,
    adversarial_tally: Any,
) -> None:
    secret_watch.add(CLOUD_TOKEN, HEADER_SECRET)
    strict = Admin(strict_gateway, workspace=admin.workspace)
    probes = server_errors = 0
    try:
        made = await strict.http.post(
            "/v1/instances",
            json=_cloud(f"http://127.0.0.1:{listener.port}/v1", health_path="/v1/models"),
        )
        probes += 1
        assert_problem(made, 422)
        # Saved while the rules were dev's (the dev replica, its own checks off), then checked
        # under prod's.
        version = strict_gateway.catalog_version()
        off = {"health_path": ""}
        loopback = await _create(admin, _cloud(f"http://127.0.0.1:{listener.port}/v1", **off))
        private = await _create(admin, _cloud("http://10.255.255.1:9/v1", **off))
        local = await _create(
            admin,
            {
                "name": f"l-{uuid.uuid4().hex[:6]}",
                "kind": "local",
                "host": "127.0.0.1",
                "port": listener.port,
                "upstream_model": "m",
                "token": CLOUD_TOKEN,
                **off,
            },
        )
        await eventually(lambda: strict_gateway.catalog_version() > version)
        bodies = []
        for inst in (loopback, private, local):
            answer = await strict.http.post(f"/v1/instances/{inst['id']}/check")
            probes += 1
            server_errors += answer.status_code >= 500
            body = assert_problem(answer, 422)
            bodies.append({k: v for k, v in body.items() if k not in ("instance", "request_id")})
        # The same answer whatever the reason (loopback, private for cloud): no port scanner.
        assert bodies[0] == bodies[1] == bodies[2]
        assert str(listener.port) not in repr(bodies)
        # Never routed, never probed in the background by the strict replica.
        await asyncio.sleep(1.0)
        routed = strict_gateway.runtime.catalog.snapshot.instances
        assert uuid.UUID(loopback["id"]) not in routed
        assert uuid.UUID(local["id"]) not in routed
    finally:
        await strict.close()
    adversarial_tally.add(
        probes=probes,
        server_errors=server_errors,
        secrets_seen=listener.secrets_seen(CLOUD_TOKEN, HEADER_SECRET),
    )
    assert server_errors == 0
    assert listener.connections == 0


async def test_check_is_rate_limited_per_instance(
    admin: Admin, backends: Callable[[str], FakeBackend], adversarial_tally: Any
) -> None:
    inst = await admin.instance(backends("rate"))
    answers = [await admin.http.post(f"/v1/instances/{inst['id']}/check") for _ in range(7)]
    codes = [a.status_code for a in answers]
    adversarial_tally.add(probes=7, server_errors=sum(c >= 500 for c in codes))
    assert codes[:5] == [200] * 5
    limited = assert_problem(answers[5], 429)
    assert int(answers[5].headers["Retry-After"]) >= 1
    assert "checks" in limited["detail"]


# --- 3. The gate has a side door --------------------------------------------------------------


async def _announce(
    broker: Broker, admin: Admin, *, model_id: uuid.UUID, base_url: str
) -> uuid.UUID:
    deployment_id = uuid.uuid4()
    await broker.publish(
        new_event(
            type=ENDPOINT_READY,
            source="/deployer",
            data={
                "deployment_id": str(deployment_id),
                "model_id": str(model_id),
                "version_id": str(uuid.uuid4()),
                "device_id": str(uuid.uuid4()),
                "base_url": base_url,
                "workspace": admin.workspace,
            },
        ),
        exchange=EVENTS_EXCHANGE,
        routing_key=ENDPOINT_READY,
    )
    return deployment_id


async def test_a_deployment_instance_in_an_unbound_group_is_judged_as_its_model(
    gateway: GatewayServer,
    admin: Admin,
    registry: Broker,  # noqa: F811 - the fixture imported above
    backends: Callable[[str], FakeBackend],
    adversarial_tally: Any,
) -> None:
    model_id = uuid.uuid4()
    await choose_gate(registry, admin, "enforce")
    conditions = {"text": "chat only", "gateway_groups": ["chat"]}
    await say(
        registry,
        "registry.model.restricted",
        model(admin, model_id, "restricted", approval_conditions=conditions),
    )
    await projected(gateway, admin, gate="enforce", model_id=model_id, approval="restricted")
    bound = await bind(admin, "chat", model_id)
    assert bound.status_code == 201, bound.text
    backend = backends("side-door")
    deployment_id = await _announce(
        registry, admin, model_id=model_id, base_url=f"http://127.0.0.1:{backend.port}"
    )
    key = await admin.key()
    client = httpx.AsyncClient(
        base_url=gateway.url, headers={"Authorization": f"Bearer {key}"}, timeout=10
    )

    def ask(group: str) -> dict[str, Any]:
        return {"model": group, "messages": [{"role": "user", "content": "hi"}]}

    async def served() -> bool:
        return (await client.post("/v1/chat/completions", json=ask("chat"))).status_code == 200

    await wait_for(served, timeout=15)
    listed = (await admin.http.get("/v1/instances")).json()["items"]
    deployed = next(i for i in listed if i["name"] == f"deployment-{deployment_id}")

    # The attack: an editor lists the deployment's instance in a new, unbound group; a
    # hand-made instance at the device's ingress address goes in another.
    editor = Admin(gateway, workspace=admin.workspace, role="editor")
    handmade = await admin.instance(backend)
    by_name = await admin.instance(backend, host="localhost")  # the same ingress, by a name
    try:
        side = await editor.post("/v1/groups", {"name": "side", "instance_ids": [deployed["id"]]})
        assert side.status_code == 201, side.text
        copy = await editor.post(
            "/v1/groups", {"name": "copy", "instance_ids": [handmade["id"], by_name["id"]]}
        )
        assert copy.status_code == 201, copy.text
    finally:
        await editor.close()
    # Another workspace pointing an instance at this workspace's device ingress.
    stranger = Admin(gateway)
    await choose_gate(registry, stranger, "enforce")
    await wait_for(lambda: _gate_is(gateway, stranger.workspace, "enforce"), timeout=10)
    foreign = await stranger.instance(backend)
    await stranger.group("borrowed", [foreign])
    stranger_key = await stranger.key()

    probes = bypasses = server_errors = 0

    async def attempt(group: str, *, as_key: str = key) -> int:
        nonlocal probes, bypasses, server_errors
        answer = await client.post(
            "/v1/chat/completions", json=ask(group), headers={"Authorization": f"Bearer {as_key}"}
        )
        probes += 1
        bypasses += answer.status_code == 200
        server_errors += answer.status_code >= 500
        return answer.status_code

    hits = len(backend.requests)
    # Restricted to "chat": every other group is refused before any backend is asked.
    restricted = [
        await attempt("side"),
        await attempt("copy"),
        await attempt("borrowed", as_key=stranger_key),
    ]
    asked_while_restricted = len(backend.requests) - hits

    # Blocked: nothing serves it, the bound group included.
    await say(registry, "registry.model.blocked", model(admin, model_id, "blocked"))
    await projected(gateway, admin, gate="enforce", model_id=model_id, approval="blocked")

    async def refused() -> bool:
        return (await client.post("/v1/chat/completions", json=ask("chat"))).status_code == 403

    await wait_for(refused, timeout=10)
    hits = len(backend.requests)
    blocked = [await attempt(group) for group in ("chat", "side", "copy")]
    asked_while_blocked = len(backend.requests) - hits
    await client.aclose()
    await stranger.close()
    adversarial_tally.add(probes=probes, server_errors=server_errors, gate_bypasses=bypasses)
    assert restricted == [403, 403, 403]
    assert blocked == [403, 403, 403]
    assert asked_while_restricted == asked_while_blocked == 0
    assert bypasses == 0


async def _gate_is(gateway: GatewayServer, workspace: str, gate: str) -> bool:
    conn = await asyncpg.connect(asyncpg_dsn(gateway.settings.database_url))
    try:
        found = await conn.fetchval(
            "SELECT gate FROM gateway.workspace_policies WHERE workspace = $1", workspace
        )
    finally:
        await conn.close()
    return bool(found == gate)


# --- 6. Idempotency replays skip authorization ------------------------------------------------


async def test_replays_are_authorized_and_another_secret_is_another_request(
    gateway: GatewayServer, admin: Admin, secret_watch: Any, adversarial_tally: Any
) -> None:
    other_token = "sk-seam-other-" + uuid.uuid4().hex
    secret_watch.add(CLOUD_TOKEN, HEADER_SECRET, PROXY_PASSWORD, other_token)
    body = _cloud(
        "https://api.example.com/v1",
        health_path="",
        proxy_url="http://proxy.example.com:3128",
        proxy_username="u",
        proxy_password=PROXY_PASSWORD,
    )
    key = {"Idempotency-Key": f"k-{uuid.uuid4().hex}"}
    first = await admin.http.post("/v1/instances", json=body, headers=key)
    assert first.status_code == 201, first.text
    again = await admin.http.post("/v1/instances", json=body, headers=key)
    assert again.status_code == 201
    assert again.json()["id"] == first.json()["id"]
    probes = 2
    changed_secret: list[httpx.Response] = []
    for changed in (
        {"token": other_token},
        {"proxy_password": other_token},
        {"secret_headers": {"api-key": other_token}},
    ):
        changed_secret.append(
            await admin.http.post("/v1/instances", json={**body, **changed}, headers=key)
        )
        probes += 1
    # Replayed by anyone who is not an admin: refused as a fresh request would be.
    replays: list[httpx.Response] = []
    for role in ("operator", "editor", "viewer"):
        replayer = Admin(gateway, workspace=admin.workspace, role=role)
        try:
            replays.append(await replayer.http.post("/v1/instances", json=body, headers=key))
        finally:
            await replayer.close()
        probes += 1
    codes = [a.status_code for a in changed_secret + replays]
    # A replay that hands the admin's instance to someone who may not create it is a bypass.
    handed = sum(a.status_code < 300 for a in replays)
    adversarial_tally.add(
        probes=probes, server_errors=sum(c >= 500 for c in codes), gate_bypasses=handed
    )
    for answer in changed_secret:
        assert_problem(answer, 422, "Idempotency-Key")
    for answer in replays:
        assert_problem(answer, 403)
        assert first.json()["id"] not in answer.text


# --- 9. Hostile input still finds 5xx ---------------------------------------------------------


@pytest.mark.parametrize("number", ["NaN", "Infinity", "-Infinity", "1e309"])
async def test_non_finite_numbers_are_a_422_naming_the_field(
    admin: Admin, number: str, adversarial_tally: Any
) -> None:
    base = (
        '{"name": "n-%s", "kind": "local", "host": "127.0.0.1", "port": 9, '
        '"upstream_model": "m", %s}'
    )
    cases = [
        ("default_params.temperature", f'"default_params": {{"temperature": {number}}}'),
        ("default_params.deep.1.x", f'"default_params": {{"deep": [1, {{"x": {number}}}]}}'),
        ("param_caps.max_tokens", f'"param_caps": {{"max_tokens": {number}}}'),
    ]
    inst = await admin.instance(9)
    answers: list[tuple[str, httpx.Response]] = []
    headers = {"Content-Type": "application/json"}
    for field, fragment in cases:
        raw = base % (uuid.uuid4().hex[:6], fragment)
        answers.append(
            (
                field,
                await _answer(admin.http.post("/v1/instances", content=raw, headers=headers)),
            )
        )
    for field, fragment in cases:
        answer = await _answer(
            admin.http.patch(
                f"/v1/instances/{inst['id']}",
                content="{" + fragment + "}",
                headers={**headers, "If-Match": inst["etag"]},
            )
        )
        answers.append((field, answer))
    codes = [answer.status_code for _, answer in answers]
    adversarial_tally.add(probes=len(codes), server_errors=sum(c >= 500 for c in codes))
    for field, answer in answers:
        body = assert_problem(answer, 422, field)
        assert "finite" in repr(body)
    assert (await admin.http.get(f"/v1/instances/{inst['id']}")).json()["default_params"] == {}
