"""Footprint: deployer state events build "where it runs now" and "what ran on date D"."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from modelyard_common.contracts import DEPLOYMENT_STATE_CHANGED, EVENTS_EXCHANGE
from modelyard_common.events import CloudEvent, new_event
from modelyard_common.messaging import Broker
from modelyard_registry.settings import RegistrySettings
from modelyard_testkit.testing import assert_problem, create_ok, wait_for

Headers = dict[str, str]
T0 = datetime(2026, 3, 1, 9, 0, tzinfo=UTC)


@pytest.fixture
async def deployer_events(settings: RegistrySettings) -> AsyncIterator[Broker]:
    """A publisher on the real broker, standing in for the deployer's outbox relay."""
    broker = Broker(settings.amqp_url)
    await broker.connect()
    yield broker
    await broker.close()


def _state(
    *,
    workspace: str,
    model_id: str,
    deployment: str,
    device: str,
    version: str,
    running: str | None,
    state: str,
    at: datetime,
    desired: str = "running",
) -> CloudEvent:
    return new_event(
        type=DEPLOYMENT_STATE_CHANGED,
        source="modelyard/deployer",
        subject=deployment,
        data={
            "deployment_id": deployment,
            "workspace": workspace,
            "model_id": model_id,
            "version_id": version,
            "running_version_id": running,
            "device_id": device,
            "state": state,
            "previous_state": "",
            "desired_state": desired,
            "message": "",
            "generation": 1,
            "occurred_at": at.isoformat(),
        },
    )


async def test_what_ran_on_date_d_across_a_version_switch(
    client: httpx.AsyncClient,
    editor: Headers,
    workspace: str,
    model_body: dict[str, Any],
    deployer_events: Broker,
) -> None:
    model = await create_ok(client, "/v1/models", model_body, editor)
    mid = model["id"]
    dep, device = str(uuid.uuid4()), str(uuid.uuid4())
    v1, v2 = str(uuid.uuid4()), str(uuid.uuid4())
    common = {"workspace": workspace, "model_id": mid, "deployment": dep, "device": device}
    h = timedelta(hours=1)
    story = [
        _state(**common, version=v1, running=None, state="pending", at=T0),
        _state(**common, version=v1, running=v1, state="running", at=T0 + h),
        # The switch: v2 downloads and starts while v1 still serves, then v2 takes over.
        _state(**common, version=v2, running=v1, state="downloading", at=T0 + 2 * h),
        _state(**common, version=v2, running=v2, state="running", at=T0 + 3 * h),
        _state(**common, version=v2, running=v2, state="stopped", at=T0 + 4 * h, desired="stopped"),
    ]
    for event in story:
        await deployer_events.publish(
            event, exchange=EVENTS_EXCHANGE, routing_key=DEPLOYMENT_STATE_CHANGED
        )
    # A redelivered event (same id) and a stale one (older state) change nothing.
    await deployer_events.publish(
        story[3], exchange=EVENTS_EXCHANGE, routing_key=DEPLOYMENT_STATE_CHANGED
    )
    stale = _state(
        **common, version=v1, running=v1, state="running", at=T0 + 90 * timedelta(minutes=1)
    )
    await deployer_events.publish(
        stale, exchange=EVENTS_EXCHANGE, routing_key=DEPLOYMENT_STATE_CHANGED
    )

    async def settled() -> Any:
        body = (await client.get(f"/v1/models/{mid}/footprint", headers=editor)).json()
        places = body["deployments"]
        return places if places and places[0]["state"] == "stopped" else None

    [place] = await wait_for(settled, timeout=15)
    assert place["deployment_id"] == dep
    assert (place["version_id"], place["running_version_id"]) == (v2, v2)

    async def serving_at(when: datetime) -> list[str]:
        response = await client.get(
            f"/v1/models/{mid}/footprint/timeline",
            params={"at": when.isoformat()},
            headers=editor,
        )
        assert response.status_code == 200, response.text
        return [s["version_id"] for s in response.json()["items"]]

    m = timedelta(minutes=30)
    assert await serving_at(T0 + m) == []  # pending: nothing served yet
    assert await serving_at(T0 + h + m) == [v1]
    assert await serving_at(T0 + 2 * h + m) == [v1]  # still v1 while v2 downloads
    assert await serving_at(T0 + 3 * h + m) == [v2]
    assert await serving_at(T0 + 4 * h + m) == []  # stopped
    timeline = await client.get(f"/v1/models/{mid}/footprint/timeline", headers=editor)
    spans = [(s["version_id"], s["started_at"], s["ended_at"]) for s in timeline.json()["items"]]
    assert spans == [
        (
            v1,
            (T0 + h).isoformat().replace("+00:00", "Z"),
            (T0 + 3 * h).isoformat().replace("+00:00", "Z"),
        ),
        (
            v2,
            (T0 + 3 * h).isoformat().replace("+00:00", "Z"),
            (T0 + 4 * h).isoformat().replace("+00:00", "Z"),
        ),
    ]


async def test_footprint_is_workspace_scoped(
    client: httpx.AsyncClient,
    editor: Headers,
    as_role: Any,
    workspace: str,
    model_body: dict[str, Any],
    deployer_events: Broker,
) -> None:
    model = await create_ok(client, "/v1/models", model_body, editor)
    # An event naming this model but another workspace never shows in this one.
    foreign = _state(
        workspace="elsewhere",
        model_id=model["id"],
        deployment=str(uuid.uuid4()),
        device=str(uuid.uuid4()),
        version=str(uuid.uuid4()),
        running=None,
        state="pending",
        at=T0,
    )
    await deployer_events.publish(
        foreign, exchange=EVENTS_EXCHANGE, routing_key=DEPLOYMENT_STATE_CHANGED
    )
    own_deployment = str(uuid.uuid4())
    own = _state(
        workspace=workspace,
        model_id=model["id"],
        deployment=own_deployment,
        device=str(uuid.uuid4()),
        version=str(uuid.uuid4()),
        running=None,
        state="pending",
        at=T0,
    )
    await deployer_events.publish(
        own, exchange=EVENTS_EXCHANGE, routing_key=DEPLOYMENT_STATE_CHANGED
    )

    async def arrived() -> Any:
        body = (await client.get(f"/v1/models/{model['id']}/footprint", headers=editor)).json()
        return body["deployments"] or None

    # Published after the foreign one on the same queue: once it is in, so was the other.
    places = await wait_for(arrived, timeout=15)
    assert [p["deployment_id"] for p in places] == [own_deployment]
    other = as_role("admin", ws="elsewhere")
    assert_problem(await client.get(f"/v1/models/{model['id']}/footprint", headers=other), 404)
