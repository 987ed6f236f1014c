"""Failover, cooldown, half-open trials, concurrency caps and health checks."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Callable

import openai
import pytest
from gateway_testkit import Admin, FakeBackend, GatewayServer, eventually, free_port


def client(gateway: GatewayServer, key: str) -> openai.AsyncOpenAI:
    return openai.AsyncOpenAI(base_url=gateway.url + "/v1", api_key=key, max_retries=0, timeout=10)


async def chat(c: openai.AsyncOpenAI) -> tuple[str, str, str]:
    """Return (content, serving instance, attempts) of one chat completion."""
    raw = await c.chat.completions.with_raw_response.create(
        model="chat", messages=[{"role": "user", "content": "hi"}]
    )
    content = raw.parse().choices[0].message.content or ""
    return content, raw.headers["x-modelyard-instance"], raw.headers["x-modelyard-attempts"]


@pytest.mark.parametrize("mode", ["refuse", "hang", "500", "429", "malformed", "drop"])
async def test_each_failure_mode_moves_on_to_the_next_instance(
    mode: str, gateway: GatewayServer, admin: Admin, backends: Callable[[str], FakeBackend]
) -> None:
    bad, good = backends("bad"), backends("good")
    if mode == "refuse":
        first = await admin.instance(free_port(), name="bad")
    else:
        bad.behaviour.mode = mode
        first = await admin.instance(bad, name="bad", read_timeout_s=0.3)
    await admin.group("chat", [first, await admin.instance(good, name="good")])
    c = client(gateway, await admin.key())

    started = time.monotonic()
    content, served_by, attempts = await chat(c)
    assert (content, served_by, attempts) == ("Hello from good", "good", "2")
    if mode == "hang":
        assert time.monotonic() - started < 2.0  # the read timeout, not the backend, decides
    if mode != "refuse":
        assert len(bad.requests) == 1
    await c.close()


async def test_all_failing_gives_503_with_reason_codes_and_no_upstream_detail(
    gateway: GatewayServer,
    admin: Admin,
    backends: Callable[[str], FakeBackend],
    caplog: pytest.LogCaptureFixture,
) -> None:
    broken = backends("broken")
    broken.behaviour.mode = "500"
    gone_port = free_port()
    await admin.group(
        "chat",
        [
            await admin.instance(gone_port, name="gone"),
            await admin.instance(broken, name="broken"),
        ],
    )
    c = client(gateway, await admin.key())
    with pytest.raises(openai.InternalServerError) as caught:
        await chat(c)
    assert caught.value.status_code == 503
    body = caught.value.body
    assert isinstance(body, dict)
    assert body["code"] == "all_instances_failed"
    assert body["attempt_count"] == 2
    assert body["attempts"] == [
        {"instance": "gone", "code": "connect_failed", "tried": True},
        {"instance": "broken", "code": "http_5xx", "tried": True},
    ]
    raw = caught.value.response.text
    # Neither the upstream's address nor its error text reaches the client (issue 11, point 4).
    for leak in ("127.0.0.1", str(gone_port), str(broken.port), "boom", "refused", "Errno"):
        assert leak not in raw
    assert caught.value.response.headers["x-modelyard-attempts"] == "2"
    # The gateway's log keeps the detail.
    logged = [r.getMessage() for r in caplog.records if r.name == "modelyard.gateway.proxy"]
    assert any("Connection refused" in m and "HTTP 500: " in m for m in logged)
    await c.close()


async def test_cooldown_skips_then_half_open_trial_extends_or_closes(
    gateway: GatewayServer, admin: Admin, backends: Callable[[str], FakeBackend]
) -> None:
    flaky, spare = backends("flaky"), backends("spare")
    flaky.behaviour.mode = "500"
    first = await admin.instance(flaky, name="flaky")
    await admin.group("chat", [first, await admin.instance(spare, name="spare")])
    c = client(gateway, await admin.key())
    state = gateway.runtime.board.state(_id(first))

    # cooldown_failures=2: two failures put "flaky" in cooldown (1 s at first in the tests).
    for _ in range(2):
        assert (await chat(c))[1:] == ("spare", "2")
    assert len(flaky.requests) == 2
    assert (await chat(c))[1:] == ("spare", "1")  # skipped, no request sent
    assert len(flaky.requests) == 2
    first_cooldown = state.cooldown_until - time.time()
    assert 0 < first_cooldown <= 1.0

    # After the cooldown one trial goes through; it fails, so a longer cooldown starts.
    await eventually(lambda: time.time() >= state.cooldown_until, within=2)
    assert (await chat(c))[1:] == ("spare", "2")
    assert len(flaky.requests) == 3
    assert (await chat(c))[1:] == ("spare", "1")
    assert 1.0 < state.cooldown_until - time.time() <= 2.0  # doubled (minus jitter)

    # Recovered: the next trial succeeds and closes the cooldown.
    flaky.behaviour.mode = "ok"
    await eventually(lambda: time.time() >= state.cooldown_until, within=3)
    assert (await chat(c))[1:] == ("flaky", "1")
    assert (await chat(c))[1:] == ("flaky", "1")
    assert state.cooldown_level == 0
    await c.close()


async def test_429_retry_after_cools_the_instance_at_once(
    gateway: GatewayServer, admin: Admin, backends: Callable[[str], FakeBackend]
) -> None:
    limited, spare = backends("limited"), backends("spare")
    limited.behaviour.mode = "429"
    limited.behaviour.retry_after = "2"
    first = await admin.instance(limited, name="limited")
    await admin.group("chat", [first, await admin.instance(spare, name="spare")])
    c = client(gateway, await admin.key())

    assert (await chat(c))[1:] == ("spare", "2")
    limited.behaviour.mode = "ok"
    await asyncio.sleep(1.2)  # longer than the 1 s cooldown, shorter than Retry-After
    assert (await chat(c))[1:] == ("spare", "1")
    await asyncio.sleep(1.0)
    assert (await chat(c))[1:] == ("limited", "1")
    await c.close()


async def test_instance_at_its_concurrency_cap_is_skipped(
    gateway: GatewayServer, admin: Admin, backends: Callable[[str], FakeBackend]
) -> None:
    slow, spare = backends("slow"), backends("spare")
    slow.behaviour.first_byte_delay_s = 0.5
    first = await admin.instance(slow, name="slow", max_concurrency=1)
    await admin.group("chat", [first, await admin.instance(spare, name="spare")])
    c = client(gateway, await admin.key())

    async def stream_first_instance() -> str:
        async with c.chat.completions.with_streaming_response.create(
            model="chat", messages=[{"role": "user", "content": "x"}], stream=True
        ) as response:
            async for _ in await response.parse():
                pass
            return response.headers["x-modelyard-instance"]

    holder = asyncio.create_task(stream_first_instance())
    await eventually(lambda: len(slow.requests) == 1)
    assert (await chat(c))[1:] == ("spare", "1")
    assert await holder == "slow"
    assert (await chat(c))[1:] == ("slow", "1")  # the slot is free again
    await c.close()


async def test_health_check_marks_down_and_back_up(
    gateway: GatewayServer, admin: Admin, backends: Callable[[str], FakeBackend]
) -> None:
    sick, spare = backends("sick"), backends("spare")
    first = await admin.instance(sick, name="sick", health_path="/v1/models")
    await admin.group("chat", [first, await admin.instance(spare, name="spare")])
    c = client(gateway, await admin.key())
    await eventually(lambda: sick.health_checks > 0)

    sick.behaviour.health_status = 503
    await eventually(lambda: gateway.runtime.board.state(_id(first)).health_down, within=3)
    before = len(sick.requests)
    assert (await chat(c))[1:] == ("spare", "1")
    assert len(sick.requests) == before

    detail = (await admin.http.get(f"/v1/instances/{first['id']}")).json()
    assert detail["health"]["status"] == "down"
    assert "HTTP 503" in detail["health"]["reason"]

    sick.behaviour.health_status = 200
    await eventually(lambda: not gateway.runtime.board.state(_id(first)).health_down, within=3)
    assert (await chat(c))[1:] == ("sick", "1")
    await c.close()


def _id(instance: dict[str, object]) -> uuid.UUID:
    return uuid.UUID(str(instance["id"]))
