"""Usage: `gateway.usage.recorded` events add up per model per day, read at `/v1/models/{id}/usage`.

The events go through the real broker to the registry's consumer, as the gateway's relay would
publish them.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, date, datetime, timedelta
from typing import Any

import httpx
import pytest

from modelyard_common.contracts import EVENTS_EXCHANGE, GATEWAY_USAGE_RECORDED
from modelyard_common.events import CloudEvent, new_event
from modelyard_common.messaging import Broker
from modelyard_registry.settings import RegistrySettings
from modelyard_testkit.testing import assert_problem, create_ok, wait_for

Headers = dict[str, str]
D1, D2 = date(2026, 3, 1), date(2026, 3, 2)
COUNTERS = ("requests", "errors", "prompt_tokens", "completion_tokens", "total_tokens")


@pytest.fixture
async def gateway_events(settings: RegistrySettings) -> AsyncIterator[Broker]:
    """A publisher on the real broker, standing in for the gateway's outbox relay."""
    broker = Broker(settings.amqp_url)
    await broker.connect()
    yield broker
    await broker.close()


def _usage(workspace: str, model_id: str, day: date, *counts: int) -> CloudEvent:
    start = datetime.combine(day, datetime.min.time(), UTC) + timedelta(hours=12)
    return new_event(
        type=GATEWAY_USAGE_RECORDED,
        source="modelyard/gateway",
        subject=model_id,
        data={
            "workspace": workspace,
            "model_id": model_id,
            "day": day.isoformat(),
            "deltas": dict(zip(COUNTERS, counts, strict=True)),
            "gateway_replica": "gw-1",
            "interval_start": start.isoformat(),
            "interval_end": (start + timedelta(seconds=5)).isoformat(),
        },
    )


async def _publish(broker: Broker, *events: CloudEvent) -> None:
    for event in events:
        await broker.publish(event, exchange=EVENTS_EXCHANGE, routing_key=GATEWAY_USAGE_RECORDED)


async def _settled(
    client: httpx.AsyncClient, path: str, headers: Headers, params: dict[str, str], want: int
) -> dict[str, Any]:
    async def counted() -> dict[str, Any] | None:
        response = await client.get(path, params=params, headers=headers)
        assert response.status_code == 200, response.text
        body: dict[str, Any] = response.json()
        return body if body["totals"]["requests"] >= want else None

    result: dict[str, Any] = await wait_for(counted, timeout=15)
    return result


async def test_deltas_add_up_per_day_once_per_event_id(
    client: httpx.AsyncClient,
    editor: Headers,
    workspace: str,
    model_body: dict[str, Any],
    gateway_events: Broker,
) -> None:
    mid = (await create_ok(client, "/v1/models", model_body, editor))["id"]
    first = _usage(workspace, mid, D1, 5, 1, 100, 40, 140)
    await _publish(
        gateway_events,
        first,
        _usage(workspace, mid, D1, 2, 1, 10, 4, 14),  # another replica, same day
        _usage(workspace, mid, D2, 3, 0, 30, 12, 42),
        first,  # redelivered: the same id counts once
        # Neither is this workspace's model: dropped, not counted anywhere.
        _usage("elsewhere", mid, D1, 50, 0, 0, 0, 0),
        _usage(workspace, str(uuid.uuid4()), D1, 60, 0, 0, 0, 0),
    )
    path = f"/v1/models/{mid}/usage"
    params = {"from": D1.isoformat(), "to": D2.isoformat()}
    body = await _settled(client, path, editor, params, want=10)
    await asyncio.sleep(1.0)  # whatever was still in flight has been applied by now
    body = (await client.get(path, params=params, headers=editor)).json()
    assert body == {
        "model_id": mid,
        "from": "2026-03-01",
        "to": "2026-03-02",
        "days": [
            {
                "day": "2026-03-01",
                "requests": 7,
                "errors": 2,
                "prompt_tokens": 110,
                "completion_tokens": 44,
                "total_tokens": 154,
            },
            {
                "day": "2026-03-02",
                "requests": 3,
                "errors": 0,
                "prompt_tokens": 30,
                "completion_tokens": 12,
                "total_tokens": 42,
            },
        ],
        "totals": {
            "requests": 10,
            "errors": 2,
            "prompt_tokens": 140,
            "completion_tokens": 56,
            "total_tokens": 196,
        },
    }
    # One day of the two: only its row, only its totals.
    one = await client.get(path, params={"from": "2026-03-02", "to": "2026-03-02"}, headers=editor)
    assert [d["day"] for d in one.json()["days"]] == ["2026-03-02"]
    assert one.json()["totals"]["requests"] == 3


async def test_the_default_range_is_the_last_30_days(
    client: httpx.AsyncClient,
    editor: Headers,
    workspace: str,
    model_body: dict[str, Any],
    gateway_events: Broker,
) -> None:
    mid = (await create_ok(client, "/v1/models", model_body, editor))["id"]
    today = datetime.now(UTC).date()
    await _publish(
        gateway_events,
        _usage(workspace, mid, today - timedelta(days=30), 4, 0, 0, 0, 0),  # 31 days ago
        _usage(workspace, mid, today - timedelta(days=29), 2, 0, 0, 0, 0),
        _usage(workspace, mid, today, 1, 1, 0, 0, 0),
    )
    path = f"/v1/models/{mid}/usage"
    everything = {"from": (today - timedelta(days=60)).isoformat()}
    await _settled(client, path, editor, everything, want=7)
    body = (await client.get(path, headers=editor)).json()
    assert (body["from"], body["to"]) == ((today - timedelta(days=29)).isoformat(), str(today))
    assert [d["day"] for d in body["days"]] == [str(today - timedelta(days=29)), str(today)]
    assert (body["totals"]["requests"], body["totals"]["errors"]) == (3, 1)


async def test_date_range_is_validated(
    client: httpx.AsyncClient, editor: Headers, model_body: dict[str, Any]
) -> None:
    mid = (await create_ok(client, "/v1/models", model_body, editor))["id"]
    path = f"/v1/models/{mid}/usage"

    async def get(**params: str) -> httpx.Response:
        return await client.get(path, params=params, headers=editor)

    assert_problem(await get(**{"from": "2026-03-02", "to": "2026-03-01"}), 422, "from")
    too_long = {"from": "2025-01-01", "to": "2026-01-02"}  # 367 days
    assert_problem(await get(**too_long), 422, "to")
    longest = await get(**{"from": "2025-01-01", "to": "2026-01-01"})  # 366 days
    assert longest.status_code == 200, longest.text
    assert_problem(await get(**{"from": "yesterday"}), 422, "from")


async def test_usage_of_another_workspace_model_is_404(
    client: httpx.AsyncClient,
    editor: Headers,
    as_role: Any,
    model_body: dict[str, Any],
) -> None:
    mid = (await create_ok(client, "/v1/models", model_body, editor))["id"]
    other = as_role("admin", ws="elsewhere")
    assert_problem(await client.get(f"/v1/models/{mid}/usage", headers=other), 404)
    unknown = f"/v1/models/{uuid.uuid4()}/usage"
    assert_problem(await client.get(unknown, headers=editor), 404)
    assert (await client.get(f"/v1/models/{mid}/usage", headers=editor)).status_code == 200


async def test_usage_route_is_documented(client: httpx.AsyncClient) -> None:
    spec = (await client.get("/openapi.json")).json()
    op = spec["paths"]["/v1/models/{model_id}/usage"]["get"]
    assert op["operationId"] == "get_model_usage"
    assert op["summary"]
    assert {"401", "403", "404", "422"} <= set(op["responses"])
    assert {"model_id", "from", "to"} <= {p["name"] for p in op["parameters"]}
    ref = op["responses"]["200"]["content"]["application/json"]["schema"]["$ref"]
    schema = spec["components"]["schemas"][ref.rsplit("/", 1)[1]]
    assert schema["examples"][0]["totals"]["requests"] == 200
    assert {"from", "to", "days", "totals"} <= set(schema["required"])
