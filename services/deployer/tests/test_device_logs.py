"""The deployer's side of container logs: what it asks a device, and what it passes on.

The device is a stand-in speaking the agent's protocol over the real broker with its own login
(the real agent, Docker and the isolation between devices are tested in tests/test_device_logs).
"""

from __future__ import annotations

from datetime import UTC, datetime

from deployer_testkit import Tenant
from fastapi import FastAPI

from modelyard_deployer.settings import DeployerSettings


async def test_a_tail_asks_the_device_once_with_the_bounds_and_answers_plain_text(
    tenant: Tenant, settings: DeployerSettings
) -> None:
    device = await tenant.register_device("talker")
    (deployment,) = await tenant.deploy((await tenant.new_version())["id"], [device])
    device.log_lines = [f"line {n}" for n in range(1, 8)]

    response = await tenant.client.get(
        f"/v1/deployments/{deployment['id']}/logs", params={"tail": 3}, headers=tenant.admin
    )

    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "text/plain; charset=utf-8"
    assert response.text == "line 5\nline 6\nline 7\n"
    assert "x-modelyard-truncated" not in response.headers
    (request,) = device.logs_requests
    assert str(request.deployment_id) == deployment["id"]
    assert (request.tail, request.follow, request.since) == (3, False, None)
    assert request.device_id == device.id
    assert request.max_bytes == settings.logs_max_bytes
    assert request.expires_at > datetime.now(UTC)


async def test_what_a_device_sends_is_cleaned_and_bounded_again(
    tenant: Tenant, app: FastAPI
) -> None:
    """A device is trusted only as itself: the deployer does not pass on what it should not."""
    device = await tenant.register_device("rogue")
    (deployment,) = await tenant.deploy((await tenant.new_version())["id"], [device])
    device.log_lines = ["a\x00b\x1b[2J", "y" * 9000, *(f"{n:04d}" for n in range(400))]
    settings: DeployerSettings = app.state.settings
    url = f"/v1/deployments/{deployment['id']}/logs"

    whole = await tenant.client.get(url, params={"tail": 10_000}, headers=tenant.admin)
    assert whole.status_code == 200, whole.text
    assert whole.headers["x-modelyard-truncated"] == "true"
    assert whole.text.split("\n") == [
        "ab[2J",  # NUL and the escape byte gone
        "y" * 8192 + " [truncated]",
        *(f"{n:04d}" for n in range(400)),
        "",
    ]

    kept = settings.logs_max_bytes
    settings.logs_max_bytes = 1024
    try:
        bounded = await tenant.client.get(url, params={"tail": 10_000}, headers=tenant.admin)
    finally:
        settings.logs_max_bytes = kept
    assert bounded.status_code == 200, bounded.text
    assert bounded.headers["x-modelyard-truncated"] == "true"
    # the long line does not fit in 1,024 bytes: the answer stops before it
    assert bounded.text == "ab[2J\n"


async def test_a_follow_ends_when_the_device_ends_it(tenant: Tenant) -> None:
    device = await tenant.register_device("follower")
    (deployment,) = await tenant.deploy((await tenant.new_version())["id"], [device])

    response = await tenant.client.get(
        f"/v1/deployments/{deployment['id']}/logs",
        params={"tail": 1, "follow": "true", "since": "2026-01-01T00:00:00Z"},
        headers=tenant.admin,
    )

    assert response.status_code == 200, response.text
    assert response.text == "stand-in line 2\n"
    (request,) = device.logs_requests
    assert request.follow is True
    assert request.since == datetime(2026, 1, 1, tzinfo=UTC)


async def test_a_device_that_never_connected_is_offline_and_gets_nothing(tenant: Tenant) -> None:
    device = await tenant.register_device("never-here", connect=False)
    (deployment,) = await tenant.deploy((await tenant.new_version())["id"], [device])

    response = await tenant.client.get(
        f"/v1/deployments/{deployment['id']}/logs", headers=tenant.admin
    )

    assert response.status_code == 503, response.text
    assert response.json()["type"] == "https://modelyard.dev/problems/device-offline"
    assert device.logs_requests == []
