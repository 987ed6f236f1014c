"""The gateway's side of the policy gate: binding and serving follow the registry's approvals.

Approvals and the workspace's gate arrive as registry events on the gateway's own queue (its
projection); no registry runs beside these tests, so the gate works from the projection alone.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from typing import Any

import httpx
from gateway_policy_kit import bind, choose_gate, model, projected, say
from gateway_testkit import Admin, FakeBackend, GatewayServer, eventually

from modelyard_common.contracts import ENDPOINT_READY, EVENTS_EXCHANGE
from modelyard_common.events import new_event
from modelyard_common.messaging import Broker
from modelyard_testkit.testing import wait_for


async def test_restricted_groups_bind_serve_and_stop_when_blocked(
    gateway: GatewayServer,
    admin: Admin,
    registry: Broker,
    backends: Callable[[str], FakeBackend],
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

    refused = await bind(admin, "search", model_id)
    assert refused.status_code == 409, refused.text
    assert refused.headers["content-type"].startswith("application/problem+json")
    assert refused.json()["approval"] == "restricted"
    assert "chat" in refused.json()["detail"]

    bound = await bind(admin, "chat", model_id)
    assert bound.status_code == 201, bound.text
    group = bound.json()
    assert group["policy"]["serving"] is True
    renamed = await admin.http.patch(
        f"/v1/groups/{group['id']}", json={"name": "search"}, headers={"If-Match": group["etag"]}
    )
    assert renamed.status_code == 409  # the restriction names the groups, so a rename is judged

    backend = backends("governed")
    await registry.publish(
        new_event(
            type=ENDPOINT_READY,
            source="/deployer",
            data={
                "deployment_id": str(uuid.uuid4()),
                "model_id": str(model_id),
                "version_id": str(uuid.uuid4()),
                "device_id": str(uuid.uuid4()),
                "base_url": f"http://127.0.0.1:{backend.port}",
                "workspace": admin.workspace,
            },
        ),
        exchange=EVENTS_EXCHANGE,
        routing_key=ENDPOINT_READY,
    )
    key = await admin.key()
    client = httpx.AsyncClient(base_url=gateway.url, headers={"Authorization": f"Bearer {key}"})
    ask = {"model": "chat", "messages": [{"role": "user", "content": "hi"}]}

    async def served() -> bool:
        return (await client.post("/v1/chat/completions", json=ask)).status_code == 200

    await wait_for(served, timeout=15)

    blocked_at = time.monotonic()
    await say(
        registry,
        "registry.model.blocked",
        model(admin, model_id, "blocked", approval_comment="prompt injection"),
    )

    async def policy_error() -> httpx.Response | None:
        answer = await client.post("/v1/chat/completions", json=ask)
        return answer if answer.status_code == 403 else None

    answer = await wait_for(policy_error, timeout=10)
    print(f"blocked -> 403 in {time.monotonic() - blocked_at:.3f} s")
    error = answer.json()["error"]
    assert (error["type"], error["code"], error["param"]) == (
        "permission_error",
        "model_not_approved",
        "model",
    )
    assert "blocked" in error["message"]
    assert "prompt injection" not in error["message"]
    asked = len(backend.requests)
    again = [await client.post("/v1/chat/completions", json=ask) for _ in range(3)]
    assert [a.status_code for a in again] == [403, 403, 403]
    assert len(backend.requests) == asked  # refused before any backend is asked
    shown = (await admin.http.get(f"/v1/groups/{group['id']}")).json()["policy"]
    assert shown["serving"] is False
    assert "blocked (by bob: prompt injection)" in shown["reason"]
    await client.aclose()


async def test_warn_serves_with_a_warning_header(
    gateway: GatewayServer,
    admin: Admin,
    registry: Broker,
    backends: Callable[[str], FakeBackend],
) -> None:
    model_id = uuid.uuid4()
    await choose_gate(registry, admin, "warn")
    await say(registry, "registry.model.blocked", model(admin, model_id, "blocked"))
    await projected(gateway, admin, gate="warn", model_id=model_id, approval="blocked")
    backend = backends("warned")
    instance = await admin.instance(backend)
    made = await bind(admin, "warned", model_id)
    assert made.status_code == 201, made.text
    group: dict[str, Any] = made.json()
    assert group["policy"]["approval"] == "blocked"
    assert (group["policy"]["gate"], group["policy"]["serving"]) == ("warn", True)
    before = gateway.catalog_version()
    patched = await admin.http.patch(
        f"/v1/groups/{group['id']}",
        json={"instance_ids": [instance["id"]]},
        headers={"If-Match": group["etag"]},
    )
    assert patched.status_code == 200, patched.text
    await eventually(lambda: gateway.catalog_version() > before)
    await gateway.settled()
    key = await admin.key()
    async with httpx.AsyncClient(base_url=gateway.url) as client:
        answer = await client.post(
            "/v1/chat/completions",
            headers={"Authorization": f"Bearer {key}"},
            json={"model": group["name"], "messages": [{"role": "user", "content": "hi"}]},
        )
    assert answer.status_code == 200, answer.text
    assert "blocked" in answer.headers["x-modelyard-policy-warning"]


async def test_unknown_approval_under_enforce_refuses_to_bind_until_the_registry_answers(
    gateway: GatewayServer, admin: Admin, registry: Broker
) -> None:
    await choose_gate(registry, admin, "enforce")
    other = uuid.uuid4()
    await say(registry, "registry.model.created", model(admin, other, "draft"))
    await projected(gateway, admin, gate="enforce", model_id=other, approval="draft")

    answer = await bind(admin, "never-heard-of", uuid.uuid4())
    assert answer.status_code == 503, answer.text
    assert "registry cannot be asked" in answer.json()["detail"]
    listed = (await admin.http.get("/v1/groups")).json()["items"]
    assert listed == []
