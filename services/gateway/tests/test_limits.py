"""Limits and budgets per key and per workspace: exact counts, on one replica and on two."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from gateway_testkit import Admin, FakeBackend, GatewayServer, eventually
from prometheus_client import REGISTRY

from modelyard_gateway.limits import meter
from modelyard_gateway.limits.meter import LEASE_SLOW_S, lease_chunk, max_chunk, next_chunk
from modelyard_gateway.migrations import migrate
from modelyard_gateway.settings import GatewaySettings
from modelyard_testkit.servers import PrivatePostgres
from modelyard_testkit.testing import recreate_database

CHAT = {"model": "chat", "messages": [{"role": "user", "content": "hi"}]}


async def room_in_this_minute(seconds: float = 15.0) -> None:
    """Wait until the current clock minute has `seconds` left (counts stay in one window)."""
    left = 60 - time.time() % 60
    if left < seconds:
        await asyncio.sleep(left + 0.2)


async def send(
    gateway: GatewayServer, key: str, count: int, *, concurrency: int = 8
) -> list[httpx.Response]:
    """Send `count` chat completions with at most `concurrency` at a time; return the answers."""
    gate = asyncio.Semaphore(concurrency)
    async with httpx.AsyncClient(
        base_url=gateway.url, headers={"Authorization": f"Bearer {key}"}, timeout=15
    ) as http:

        async def one() -> httpx.Response:
            async with gate:
                return await http.post("/v1/chat/completions", json=CHAT)

        return await asyncio.gather(*(one() for _ in range(count)))


def statuses(answers: list[httpx.Response]) -> dict[int, int]:
    counts: dict[int, int] = {}
    for answer in answers:
        counts[answer.status_code] = counts.get(answer.status_code, 0) + 1
    return counts


async def chat_group(admin: Admin, backend: FakeBackend) -> None:
    await admin.group("chat", [await admin.instance(backend, name=backend.name)])


async def test_exactly_the_limit_passes_then_429_with_retry_after_and_openai_headers(
    gateway: GatewayServer,
    admin: Admin,
    backends: Callable[[str], FakeBackend],
    caplog: pytest.LogCaptureFixture,
) -> None:
    backend = backends("limited")
    await chat_group(admin, backend)
    key = await admin.key(limits={"requests_per_minute": 25})
    await room_in_this_minute()

    answers = await send(gateway, key, 40)
    assert statuses(answers) == {200: 25, 429: 15}
    assert len(backend.requests) == 25  # a refused request never reaches a backend
    refused = next(a for a in answers if a.status_code == 429)
    error = refused.json()["error"]
    assert (error["type"], error["code"]) == ("requests", "rate_limit_exceeded")
    assert "limit 25" in error["message"]
    assert 1 <= int(refused.headers["retry-after"]) <= 60
    served = [a for a in answers if a.status_code == 200]
    assert {a.headers["x-ratelimit-limit-requests"] for a in served} == {"25"}
    remaining = sorted(int(a.headers["x-ratelimit-remaining-requests"]) for a in served)
    assert remaining[0] == 0
    assert remaining[-1] <= 24
    assert served[0].headers["x-ratelimit-reset-requests"].endswith("s")
    # Counted by the shared counter, not by the fallback a replica uses without its database.
    assert not [r for r in caplog.records if r.name == "modelyard.gateway.limits"]


def test_a_lease_grows_with_the_pace_and_shrinks_back_within_its_bounds() -> None:
    limit = 60_000  # first chunk 100, at most 3,000
    assert lease_chunk(limit) == 100
    assert max_chunk(limit) == 3_000
    sizes = [0]
    for _ in range(8):  # leases needed in quick succession
        sizes.append(next_chunk(limit, sizes[-1], 0.01))
    assert sizes[1:] == [200, 400, 800, 1600, 3000, 3000, 3000, 3000]
    assert next_chunk(limit, 3000, 2.0) == 3000  # a steady pace keeps its size
    assert next_chunk(limit, 3000, LEASE_SLOW_S + 1) == 1500
    assert next_chunk(limit, 150, LEASE_SLOW_S + 1) == 100  # never below the first size
    assert next_chunk(60, 0, 0.0) == 3
    assert next_chunk(60, 3, 0.0) == 3


def leases() -> float:
    sample = REGISTRY.get_sample_value(
        "modelyard_gateway_limit_leases_total", {"measure": "requests_per_minute"}
    )
    return sample or 0.0


async def test_a_busy_key_asks_the_database_a_few_times_not_once_per_hundred_requests(
    gateway: GatewayServer,
    admin: Admin,
    backends: Callable[[str], FakeBackend],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Whatever this machine's speed, every lease counts as quick: the chunks double each time.
    monkeypatch.setattr(meter, "LEASE_FAST_S", 600.0)
    backend = backends("busy")
    await chat_group(admin, backend)
    key = await admin.key(limits={"requests_per_minute": 1_000_000})
    before = leases()
    answers = await send(gateway, key, 2000, concurrency=16)
    assert statuses(answers) == {200: 2000}
    # At a fixed 100 per lease that is 20 leases; doubling chunks (100, 200, .., 1600) need 5,
    # one more when a refill ahead of need overlaps the end, one more if the minute turns.
    assert leases() - before <= 8


async def test_two_replicas_never_pass_the_limit_and_fall_short_by_at_most_one_lease(
    gateway: GatewayServer,
    replica: GatewayServer,
    admin: Admin,
    backends: Callable[[str], FakeBackend],
) -> None:
    backend = backends("shared")
    await chat_group(admin, backend)
    limit = 60
    key = await admin.key(limits={"requests_per_minute": limit})
    await eventually(lambda: (admin.workspace, "chat") in replica.runtime.catalog.snapshot.groups)
    await room_in_this_minute()

    # Both replicas at once, each sending more than the whole limit.
    on_a, on_b = await asyncio.gather(
        send(gateway, key, limit, concurrency=6), send(replica, key, limit, concurrency=6)
    )
    passed = statuses(on_a).get(200, 0) + statuses(on_b).get(200, 0)
    # The stated bound (limits/meter.py): N replicas pass between
    # limit - (N - 1) * (max_chunk - 1) and limit; never more.
    assert limit - (2 - 1) * (max_chunk(limit) - 1) <= passed <= limit
    assert statuses(on_a).get(200, 0) > 0
    assert statuses(on_b).get(200, 0) > 0
    assert len(backend.requests) == passed
    assert set(statuses(on_a)) | set(statuses(on_b)) <= {200, 429}


async def test_the_workspace_ceiling_holds_across_keys_and_changes_need_if_match(
    gateway: GatewayServer, admin: Admin, backends: Callable[[str], FakeBackend]
) -> None:
    backend = backends("ceiling")
    await chat_group(admin, backend)
    first, second = await admin.key(), await admin.key(limits={"requests_per_minute": 100})

    current = await admin.http.get("/v1/limits")
    assert current.status_code == 200
    assert current.json()["requests_per_minute"] is None
    assert current.headers["etag"] == '"0"'
    missing = await admin.http.patch("/v1/limits", json={"requests_per_minute": 10})
    assert missing.status_code == 428
    stale = await admin.http.patch(
        "/v1/limits", json={"requests_per_minute": 10}, headers={"If-Match": '"7"'}
    )
    assert stale.status_code == 412
    viewer = Admin(gateway, workspace=admin.workspace, role="viewer")
    refused = await viewer.http.patch(
        "/v1/limits", json={"requests_per_minute": 10}, headers={"If-Match": '"0"'}
    )
    assert refused.status_code == 403
    await viewer.close()
    changed = await admin.patch(
        "/v1/limits", {"requests_per_minute": 10}, headers={"If-Match": '"0"'}
    )
    assert changed.status_code == 200, changed.text
    assert changed.json()["updated_by"] == "tester"
    assert changed.headers["etag"] == '"1"'
    await room_in_this_minute()

    answers = await send(gateway, first, 8) + await send(gateway, second, 8)
    assert statuses(answers) == {200: 10, 429: 6}
    assert len(backend.requests) == 10
    refusal = next(a for a in answers if a.status_code == 429).json()["error"]
    assert "workspace" in refusal["message"]

    # Lifting the ceiling applies at once.
    lifted = await admin.patch(
        "/v1/limits", {"requests_per_minute": None}, headers={"If-Match": '"1"'}
    )
    assert lifted.status_code == 200
    assert statuses(await send(gateway, first, 3)) == {200: 3}


async def test_a_daily_token_budget_refuses_once_spent_with_insufficient_quota(
    gateway: GatewayServer, admin: Admin, backends: Callable[[str], FakeBackend]
) -> None:
    backend = backends("budget")  # reports 3 total tokens per answer
    await chat_group(admin, backend)
    key = await admin.key(limits={"tokens_per_day": 7})

    answers = [(await send(gateway, key, 1))[0] for _ in range(5)]
    assert [a.status_code for a in answers] == [200, 200, 200, 429, 429]
    error = answers[3].json()["error"]
    assert (error["type"], error["code"]) == ("insufficient_quota", "insufficient_quota")
    now = datetime.now(UTC)
    midnight = datetime(now.year, now.month, now.day, tzinfo=UTC) + timedelta(days=1)
    assert abs(int(answers[3].headers["retry-after"]) - (midnight - now).total_seconds()) < 5
    assert len(backend.requests) == 3


async def test_tokens_per_minute_counts_what_streams_report(
    gateway: GatewayServer, admin: Admin, backends: Callable[[str], FakeBackend]
) -> None:
    backend = backends("tpm")
    await chat_group(admin, backend)
    key = await admin.key(limits={"tokens_per_minute": 5})
    await room_in_this_minute()
    async with httpx.AsyncClient(
        base_url=gateway.url, headers={"Authorization": f"Bearer {key}"}, timeout=15
    ) as http:
        plain = await http.post("/v1/chat/completions", json=CHAT)
        assert plain.status_code == 200
        assert plain.headers["x-ratelimit-limit-tokens"] == "5"
        assert plain.headers["x-ratelimit-remaining-tokens"] == "2"  # after this answer's 3
        streamed = await http.post(
            "/v1/chat/completions",
            json={**CHAT, "stream": True, "stream_options": {"include_usage": True}},
        )
        assert streamed.status_code == 200
        # Its headers leave before its tokens are known; they count once the stream reports them.
        assert streamed.headers["x-ratelimit-remaining-tokens"] == "2"
        assert '"usage"' in streamed.text
        over = await http.post("/v1/chat/completions", json=CHAT)
    assert over.status_code == 429
    assert over.json()["error"]["type"] == "tokens"


async def test_an_expired_key_is_refused_and_expiry_is_changed_with_if_match(
    gateway: GatewayServer, admin: Admin, backends: Callable[[str], FakeBackend]
) -> None:
    await chat_group(admin, backends("expiry"))
    # A time already past cuts the key off at once.
    past = await admin.key_created(expires_at="2020-01-01T00:00:00Z")
    cut_off = (await send(gateway, past["key"], 1))[0]
    assert cut_off.status_code == 401
    assert cut_off.json()["error"]["code"] == "expired_api_key"
    no_zone = await admin.http.post(
        "/v1/keys", json={"name": "old", "expires_at": "2030-01-01T00:00:00"}
    )
    assert no_zone.status_code == 422
    assert no_zone.json()["errors"][0]["field"].endswith("expires_at")

    soon = datetime.now(UTC) + timedelta(seconds=4)
    created = await admin.key_created(expires_at=soon.isoformat())
    key = created["key"]
    assert datetime.fromisoformat(created["expires_at"]) == soon
    assert created["etag"] == '"1"'
    assert (await send(gateway, key, 1))[0].status_code == 200
    await asyncio.sleep((soon - datetime.now(UTC)).total_seconds() + 0.3)
    expired = (await send(gateway, key, 1))[0]
    assert expired.status_code == 401
    assert expired.json()["error"]["code"] == "expired_api_key"

    path = f"/v1/keys/{created['id']}"
    extended = await admin.patch(
        path,
        {"expires_at": None, "limits": {"requests_per_minute": 1}},
        headers={"If-Match": created["etag"]},
    )
    assert extended.status_code == 200, extended.text
    body: dict[str, Any] = extended.json()
    assert body["expires_at"] is None
    assert body["limits"]["requests_per_minute"] == 1
    assert "key" not in body
    again = await admin.http.patch(
        path, json={"name": "renamed"}, headers={"If-Match": created["etag"]}
    )
    assert again.status_code == 412
    await room_in_this_minute()
    assert statuses(await send(gateway, key, 3)) == {200: 1, 429: 2}


async def test_admin_tokens_do_not_call_models(
    gateway: GatewayServer, admin: Admin, backends: Callable[[str], FakeBackend]
) -> None:
    backend = backends("no-bypass")
    await chat_group(admin, backend)
    await admin.key(limits={"requests_per_minute": 1})
    token = admin.http.headers["Authorization"].removeprefix("Bearer ")
    answer = (await send(gateway, token, 1))[0]
    assert answer.status_code == 401
    assert backend.requests == []


@pytest.mark.parametrize(
    "limits",
    [
        {"requests_per_minute": 0},
        {"tokens_per_day": -5},
        {"requests_per_minute": "many"},
        {"requests_per_hour": 5},
    ],
)
async def test_bad_limits_are_a_problem_and_change_nothing(
    admin: Admin, limits: dict[str, Any]
) -> None:
    answer = await admin.http.post("/v1/keys", json={"name": "bad", "limits": limits})
    assert answer.status_code == 422
    assert answer.headers["content-type"].startswith("application/problem+json")
    listed = await admin.http.get("/v1/keys")
    assert listed.json()["items"] == []


async def test_with_its_database_killed_a_replica_keeps_counting_from_what_it_knew(
    make_settings: Callable[..., GatewaySettings],
    backends: Callable[[str], FakeBackend],
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The weather: PostgreSQL killed mid-window; requests go on, the limit still holds."""
    pg = await asyncio.to_thread(lambda: PrivatePostgres().start())
    server: GatewayServer | None = None
    try:
        url = await recreate_database(pg.admin_url, "modelyard_limits_weather")
        await asyncio.to_thread(migrate, url)
        server = await asyncio.to_thread(
            lambda: GatewayServer(make_settings(database_url=url, consume_events=False)).start()
        )
        admin = Admin(server)
        backend = backends("weather")
        await chat_group(admin, backend)
        key = await admin.key(limits={"requests_per_minute": 30})
        await room_in_this_minute(25)

        assert statuses(await send(server, key, 10)) == {200: 10}
        await asyncio.to_thread(pg.stop, kill=True)
        answers = await send(server, key, 30)
        assert statuses(answers) == {200: 20, 429: 10}  # 30 in the window, not 30 more
        assert len(backend.requests) == 30
        assert any("limit counters unreachable" in r.getMessage() for r in caplog.records)

        await asyncio.to_thread(pg.start)
        assert statuses(await send(server, key, 2)) == {429: 2}  # still the same window
        await admin.close()
    finally:
        if server is not None:
            await asyncio.to_thread(server.stop)
        await asyncio.to_thread(pg.close)
