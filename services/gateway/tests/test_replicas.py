"""Two gateway replicas on one database agree on health, cooldowns, config and keys."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Callable

import openai
import pytest
from gateway_testkit import Admin, FakeBackend, GatewayServer, eventually

# Replicas agree through NOTIFY within milliseconds when the machine is calm; CI's loaded two
# cores get room here (latency is a benchmark's business, not a unit test's).
AGREE_WITHIN_S = 5.0


def client(gateway: GatewayServer, key: str) -> openai.AsyncOpenAI:
    return openai.AsyncOpenAI(base_url=gateway.url + "/v1", api_key=key, max_retries=0, timeout=10)


async def served_by(c: openai.AsyncOpenAI) -> tuple[str, str]:
    raw = await c.chat.completions.with_raw_response.create(
        model="chat", messages=[{"role": "user", "content": "hi"}]
    )
    return raw.headers["x-modelyard-instance"], raw.headers["x-modelyard-attempts"]


async def test_a_cooldown_started_on_one_replica_holds_on_the_other(
    gateway: GatewayServer,
    replica: GatewayServer,
    admin: Admin,
    backends: Callable[[str], FakeBackend],
) -> None:
    flaky, spare = backends("flaky"), backends("spare")
    flaky.behaviour.mode = "500"
    first = await admin.instance(flaky, name="flaky")
    await admin.group("chat", [first, await admin.instance(spare, name="spare")])
    key = await admin.key()
    on_a, on_b = client(gateway, key), client(replica, key)
    await eventually(lambda: (admin.workspace, "chat") in replica.runtime.catalog.snapshot.groups)

    for _ in range(2):
        assert await served_by(on_a) == ("spare", "2")
    cooled_at = time.monotonic()
    instance_id = uuid.UUID(first["id"])
    await eventually(
        lambda: replica.runtime.board.state(instance_id).cooldown_until > time.time(),
        within=AGREE_WITHIN_S,
    )
    assert time.monotonic() - cooled_at < AGREE_WITHIN_S
    assert await served_by(on_b) == ("spare", "1")
    assert len(flaky.requests) == 2  # replica B never sent it a request
    await on_a.close()
    await on_b.close()


async def test_backoff_level_and_cause_are_shared_and_a_trial_success_clears_both(
    gateway: GatewayServer,
    replica: GatewayServer,
    admin: Admin,
    backends: Callable[[str], FakeBackend],
) -> None:
    flaky, spare = backends("flaky"), backends("spare")
    flaky.behaviour.mode = "drop"
    first = await admin.instance(flaky, name="flaky")
    await admin.group("chat", [first, await admin.instance(spare, name="spare")])
    key = await admin.key()
    on_a, on_b = client(gateway, key), client(replica, key)
    await eventually(lambda: (admin.workspace, "chat") in replica.runtime.catalog.snapshot.groups)
    instance_id = uuid.UUID(first["id"])
    on_replica = replica.runtime.board.state(instance_id)

    for _ in range(2):
        assert await served_by(on_a) == ("spare", "2")
    await eventually(lambda: on_replica.cooldown_level == 1, within=2.0)
    assert on_replica.cause == "dropped"
    assert on_replica.cooldown_until > time.time()

    # Replica B's own half-open trial succeeds once the cooldown has run out: it ends the
    # cooldown (and its backoff) on replica A too.
    flaky.behaviour.mode = "ok"
    await eventually(lambda: time.time() > on_replica.cooldown_until, within=3.0)
    assert await served_by(on_b) == ("flaky", "1")
    on_a_state = gateway.runtime.board.state(instance_id)
    await eventually(lambda: on_a_state.cooldown_until == 0, within=2.0)
    assert on_a_state.cooldown_level == 0
    assert await served_by(on_a) == ("flaky", "1")
    await on_a.close()
    await on_b.close()


async def test_health_down_is_seen_by_both_replicas_within_a_second(
    gateway: GatewayServer,
    replica: GatewayServer,
    admin: Admin,
    backends: Callable[[str], FakeBackend],
) -> None:
    sick = backends("sick")
    first = await admin.instance(sick, name="sick", health_path="/v1/models")
    instance_id = uuid.UUID(first["id"])
    await eventually(lambda: sick.health_checks > 0)
    checks_before = sick.health_checks
    sick.behaviour.health_status = 500

    def down_on(server: GatewayServer) -> bool:
        return server.runtime.board.state(instance_id).health_down

    await eventually(lambda: down_on(gateway) or down_on(replica), within=3)
    first_seen = time.monotonic()
    await eventually(lambda: down_on(gateway) and down_on(replica), within=AGREE_WITHIN_S)
    assert time.monotonic() - first_seen < AGREE_WITHIN_S
    # Replicas share one check per interval rather than each probing on its own.
    interval = gateway.settings.health_interval_s
    await asyncio.sleep(interval * 3)
    assert sick.health_checks - checks_before <= 6


async def test_admin_changes_and_revocations_reach_the_other_replica(
    gateway: GatewayServer,
    replica: GatewayServer,
    admin: Admin,
    backends: Callable[[str], FakeBackend],
) -> None:
    backend = backends("b")
    await admin.group("chat", [await admin.instance(backend, name="b")])
    created = await admin.http.post("/v1/keys", json={"name": "k", "groups": ["chat"]})
    key, key_id = created.json()["key"], created.json()["id"]
    on_b = client(replica, key)
    await eventually(
        lambda: (admin.workspace, "chat") in replica.runtime.catalog.snapshot.groups,
        within=AGREE_WITHIN_S,
    )
    assert await served_by(on_b) == ("b", "1")

    revoked = await admin.http.delete(f"/v1/keys/{key_id}")
    assert revoked.status_code == 200
    assert revoked.json()["revoked_at"]
    await eventually(
        lambda: (
            not any(
                k.id == uuid.UUID(key_id) for k in replica.runtime.catalog.snapshot.keys.values()
            )
        ),
        within=AGREE_WITHIN_S,
    )
    with pytest.raises(openai.AuthenticationError) as caught:
        await served_by(on_b)
    assert caught.value.code == "invalid_api_key"
    await on_b.close()
