"""Where the deployer's features meet (issue 18): each probe is what an attacker inside a
workspace tried, and each must now be refused, bounded or governed.

Every test reports its counts to the run's adversarial table (`adversarial_tally`): probes
sent, 5xx answers, gate bypasses (a refused act that went through anyway).
"""

from __future__ import annotations

import io
import logging
import uuid
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

import aio_pika
import httpx
import pytest
from deployer_testkit import (
    MAIN_PY,
    DeviceStandIn,
    Tenant,
    choose_gate,
    eventually,
    model_data,
    processed,
    projected,
    publish_event,
    registry_says,
)
from fastapi import FastAPI
from modelyard_testkit.testing import TEST_AMQP_URL, assert_problem
from prometheus_client import REGISTRY
from sqlalchemy import text

from modelyard_common.contracts import DEPLOYMENT_REPORTED, DEVICE_HEARTBEAT
from modelyard_common.device_identity import broker_username, device_amqp_url
from modelyard_common.events import new_event
from modelyard_deployer.governance.repository import governance_lock_key
from modelyard_deployer.governance.service import hold_for_judgement
from modelyard_deployer.settings import DeployerSettings

LIFECYCLE = ["downloading", "verifying", "building", "starting", "running"]


def server_errors(responses: list[httpx.Response]) -> int:
    return sum(r.status_code >= 500 for r in responses)


def rejected(kind: str, reason: str) -> float:
    value = REGISTRY.get_sample_value(
        "modelyard_deployer_device_messages_rejected_total", {"kind": kind, "reason": reason}
    )
    return value or 0.0


async def device_view(tenant: Tenant, device: DeviceStandIn) -> dict[str, Any]:
    response = await tenant.client.get(f"/v1/devices/{device.id}", headers=tenant.admin)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


@contextmanager
def ingress_settings(settings: DeployerSettings, **changes: Any) -> Iterator[None]:
    """Run with some ingress settings changed (the app reads them per request)."""
    before = {name: getattr(settings, name) for name in changes}
    for name, value in changes.items():
        setattr(settings, name, value)
    try:
        yield
    finally:
        for name, value in before.items():
            setattr(settings, name, value)


# --- 2. an editor moves a device -----------------------------------------------------------


async def test_only_an_admin_moves_a_device(tenant: Tenant, adversarial_tally: Any) -> None:
    device = await tenant.register_device("press-3", {"site": "plant-1"}, connect=False)
    editor = tenant.headers("erin", ("editor",))
    before = await device_view(tenant, device)
    answers = []
    for move in (
        {"advertise_host": "203.0.113.9", "ingress_port": 9443},
        {"advertise_host": "203.0.113.9"},
        {"ingress_port": 9443},
        {"name": "renamed", "advertise_host": "203.0.113.9"},
    ):
        answer = await tenant.client.patch(
            f"/v1/devices/{device.id}", json=move, headers={**editor, "If-Match": before["etag"]}
        )
        answers.append(answer)
        named = [f for f in ("advertise_host", "ingress_port") if f in move]
        problem = assert_problem(answer, 403, *named)
        assert "admin" in problem["detail"]
    after = await device_view(tenant, device)
    assert after == before  # nothing changed, not even the name sent alongside

    # Repeating the current address is no move; labels stay an editor's to change.
    relabel = await tenant.client.patch(
        f"/v1/devices/{device.id}",
        json={"labels": {"site": "plant-2"}, "advertise_host": before["advertise_host"]},
        headers={**editor, "If-Match": before["etag"]},
    )
    answers.append(relabel)
    assert relabel.status_code == 200, relabel.text
    assert relabel.json()["labels"] == {"site": "plant-2"}

    moved = await tenant.client.patch(
        f"/v1/devices/{device.id}",
        json={"advertise_host": "203.0.113.9", "ingress_port": 9443},
        headers={**tenant.admin, "If-Match": relabel.json()["etag"]},
    )
    answers.append(moved)
    assert moved.status_code == 200, moved.text
    assert (moved.json()["advertise_host"], moved.json()["ingress_port"]) == ("203.0.113.9", 9443)
    # An admin is held to the ingress policy too: a platform port, even in dev.
    to_platform = await tenant.client.patch(
        f"/v1/devices/{device.id}",
        json={"advertise_host": "127.0.0.1", "ingress_port": 8001},
        headers={**tenant.admin, "If-Match": moved.json()["etag"]},
    )
    answers.append(to_platform)
    assert_problem(to_platform, 422, "ingress_port")
    assert (await device_view(tenant, device))["advertise_host"] == "203.0.113.9"
    adversarial_tally.add(
        probes=len(answers),
        server_errors=server_errors(answers),
        gate_bypasses=sum(a.status_code == 200 for a in answers[:4]),
    )


# --- 4. a device widens its own trust ------------------------------------------------------


async def provisioning_token(tenant: Tenant, labels: dict[str, str], uses: int = 5) -> str:
    made = await tenant.client.post(
        "/v1/provisioning-tokens",
        json={"name": "rollout", "max_uses": uses, "labels": labels},
        headers=tenant.admin,
    )
    assert made.status_code == 201, made.text
    token: str = made.json()["token"]
    return token


async def self_register(tenant: Tenant, token: str, **body: Any) -> httpx.Response:
    return await tenant.client.post(
        "/v1/devices/register",
        json={"name": f"edge-{uuid.uuid4().hex[:6]}", **body},
        headers={"Authorization": f"Bearer {token}"},
    )


async def test_a_device_gets_exactly_its_provisioning_labels(
    tenant: Tenant, adversarial_tally: Any, secret_watch: Any
) -> None:
    token = await provisioning_token(tenant, {"site": "prov"}, uses=1)
    secret_watch.add(token)
    answers = []
    for labels, field in (
        ({"site": "a"}, "labels.site"),
        ({"site": "prov", "tier": "gold"}, "labels.tier"),
        ({"extra": "x"}, "labels.extra"),
    ):
        answer = await self_register(tenant, token, labels=labels, advertise_host="10.1.2.3")
        answers.append(answer)
        assert_problem(answer, 422, field)
    # Refusals used nothing up: the one use registers a device, with the token's labels.
    repeated = await self_register(
        tenant, token, labels={"site": "prov"}, advertise_host="10.1.2.3"
    )
    answers.append(repeated)
    assert repeated.status_code == 201, repeated.text
    secret_watch.add(repeated.json()["token"])
    assert repeated.json()["labels"] == {"site": "prov"}
    # So nothing a device said makes deployments by selector `site=a` reach it.
    version = await tenant.new_version()
    by_selector = await tenant.client.post(
        "/v1/deployments",
        json={"version_id": version["id"], "selector": {"site": "a"}},
        headers=tenant.admin,
    )
    answers.append(by_selector)
    assert_problem(by_selector, 422, "selector")
    widened = sum(
        a.status_code == 201 and a.json()["labels"] != {"site": "prov"} for a in answers[:3]
    )
    adversarial_tally.add(
        probes=len(answers), server_errors=server_errors(answers), gate_bypasses=widened
    )


REFUSED_EVERYWHERE = [
    ("0.0.0.0", None, "advertise_host"),
    ("0:0:0:0:0:0:0:0", None, "advertise_host"),
    ("169.254.169.254", None, "advertise_host"),
    ("fe80::1", None, "advertise_host"),
    ("224.0.0.251", None, "advertise_host"),
    ("240.0.0.1", None, "advertise_host"),
    ("0.1.2.3", None, "advertise_host"),
    ("127.0.0.1", 8001, "ingress_port"),  # the registry
    ("127.0.0.1", 5672, "ingress_port"),  # RabbitMQ
    ("localhost", 5432, "ingress_port"),  # PostgreSQL
    ("10.0.0.9", 15672, "ingress_port"),  # RabbitMQ's management API
]


async def test_advertised_addresses_follow_the_ingress_policy(
    tenant: Tenant, settings: DeployerSettings, adversarial_tally: Any
) -> None:
    token = await provisioning_token(tenant, {}, uses=100)
    answers: list[httpx.Response] = []

    async def both_ways(host: str, port: int | None) -> list[httpx.Response]:
        body: dict[str, Any] = {"advertise_host": host}
        if port is not None:
            body["ingress_port"] = port
        by_editor = await tenant.client.post(
            "/v1/devices",
            json={"name": f"d-{uuid.uuid4().hex[:6]}", **body},
            headers=tenant.headers("erin", ("editor",)),
        )
        by_itself = await self_register(tenant, token, **body)
        answers.extend([by_editor, by_itself])
        return [by_editor, by_itself]

    for host, port, field in REFUSED_EVERYWHERE:
        for answer in await both_ways(host, port):
            assert_problem(answer, 422, field)
    # In dev every process shares one machine: loopback is allowed off the platform's ports.
    for answer in await both_ways("127.0.0.1", 18999):
        assert answer.status_code == 201, answer.text
    # Never in prod (the default there), names of the loopback interface included.
    with ingress_settings(settings, device_ingress_allow_loopback=False):
        for host in (
            "127.0.0.1",
            "127.8.9.10",
            "localhost",
            "edge.localhost",
            "0:0:0:0:0:0:0:1",
            "0::ffff:127.0.0.1",
            "127.1",  # resolves to 127.0.0.1, as does the next
            "2130706433",
        ):
            for answer in await both_ways(host, 18999):
                assert_problem(answer, 422, "advertise_host")
    # An allow list admits only its networks and names.
    with ingress_settings(settings, device_ingress_allow=["10.20.0.0/16", "*.edge.example"]):
        for host in ("10.0.0.7", "203.0.113.9", "elsewhere.example"):
            for answer in await both_ways(host, None):
                assert_problem(answer, 422, "advertise_host")
        for host in ("10.20.3.4", "press-3.edge.example"):
            for answer in await both_ways(host, None):
                assert answer.status_code == 201, answer.text
    refused_hosts = {h for h, _, field in REFUSED_EVERYWHERE if field == "advertise_host"}
    listed = await tenant.client.get("/v1/devices", params={"limit": 200}, headers=tenant.admin)
    assert not refused_hosts & {d["advertise_host"] for d in listed.json()["items"]}
    adversarial_tally.add(
        probes=len(answers),
        server_errors=server_errors(answers),
        gate_bypasses=sum(a.status_code == 201 for a in answers[: 2 * len(REFUSED_EVERYWHERE)]),
    )


def test_prod_refuses_loopback_and_the_platform_ports_by_default() -> None:
    from modelyard_deployer.devices.ingress import IngressPolicy

    prod = IngressPolicy.from_settings(
        DeployerSettings(env="prod", registry_url="http://registry.internal:9001")
    )
    assert not prod.allow_loopback
    assert {8000, 8001, 8002, 8003, 5432, 5672, 15672, 9001} <= prod.refused_ports
    dev = IngressPolicy.from_settings(DeployerSettings(env="dev"))
    assert dev.allow_loopback
    assert 8001 in dev.refused_ports


async def test_a_heartbeat_never_moves_or_relabels_a_device(tenant: Tenant) -> None:
    device = await tenant.register_device("steady", {"site": "plant-1"}, connect=False)
    before = await device_view(tenant, device)
    heartbeat = new_event(
        type=DEVICE_HEARTBEAT,
        source=f"modelyard-agent/{device.id}",
        data={
            "device_id": str(device.id),
            "agent_version": "0.1.0",
            "capabilities": {"arch": "arm64"},
            "advertise_host": "127.0.0.1",
            "ingress_port": 8001,
            "labels": {"site": "a"},
            "sent_at": datetime.now(UTC).isoformat(),
        },
    )
    await publish_event(await device.login(), heartbeat)

    async def seen() -> dict[str, Any] | None:
        current = await device_view(tenant, device)
        return current if current["capabilities"] == {"arch": "arm64"} else None

    after = await eventually(seen)
    assert (after["advertise_host"], after["ingress_port"], after["labels"]) == (
        before["advertise_host"],
        before["ingress_port"],
        {"site": "plant-1"},
    )


# --- 5. the approval-change window ---------------------------------------------------------


async def approved_under(app: FastAPI, tenant: Tenant, gate: str) -> None:
    await choose_gate(tenant, gate)
    await registry_says(tenant, "registry.model.approved", model_data(tenant, "approved"))
    await projected(app, tenant, gate=gate, approval="approved")


async def judged_long_ago(app: FastAPI, deployment_id: str) -> None:
    async with app.state.sessionmaker() as session, session.begin():
        await session.execute(
            text(
                "UPDATE deployer.deployments SET run_judged_at = now() - interval '1 minute' "
                "WHERE id = :id"
            ),
            {"id": deployment_id},
        )


async def test_a_deployment_let_run_after_the_model_went_back_to_draft_is_stopped(
    tenant: Tenant, app: FastAPI, adversarial_tally: Any
) -> None:
    version = await tenant.new_version()
    earlier = await tenant.register_device("earlier")
    window = await tenant.register_device("window")
    await approved_under(app, tenant, "enforce")
    (running,) = await tenant.deploy(version["id"], [earlier])
    await earlier.next_command()
    await judged_long_ago(app, running["id"])  # deployed well before the edit below

    # The registry sends the model back to draft now; its event is held back (published only
    # after the next deploy), so the deployer still judges on `approved`: the window.
    edited_at = datetime.now(UTC)
    (late,) = await tenant.deploy(version["id"], [window])
    assert (await window.next_command()).action.value == "deploy"
    draft = await registry_says(
        tenant, "registry.model.updated", model_data(tenant, "draft"), at=edited_at
    )
    await processed(app, draft)

    stop = await window.next_command()
    assert (stop.action.value, stop.deployment_id) == ("stop", uuid.UUID(late["id"]))
    current = await tenant.deployment(late["id"])
    assert current["desired_state"] == "stopped"
    (entry,) = [h for h in await tenant.history(late["id"]) if h["actor"] == "policy-gate"]
    assert entry["action"] == "stop"
    assert "draft" in entry["message"]
    assert "after the approval changed" in entry["message"]
    # What ran before the edit keeps running until a reviewer decides (a draft stops nothing).
    kept = await tenant.deployment(running["id"])
    assert kept["desired_state"] == "running"
    assert all(h["actor"] != "policy-gate" for h in await tenant.history(running["id"]))
    # And the window is closed for new deployments too.
    again = await tenant.client.post(f"/v1/deployments/{late['id']}/start", headers=tenant.admin)
    assert again.status_code == 409, again.text
    adversarial_tally.add(probes=2, gate_bypasses=int(current["desired_state"] == "running"))


async def test_a_deployment_committed_while_the_change_is_applied_is_stopped(
    tenant: Tenant, app: FastAPI, adversarial_tally: Any
) -> None:
    """The window inside the deployer: a request judged on `approved` and not yet committed
    when the consumer applies the change. The consumer waits for it, then stops what it made."""
    version = await tenant.new_version()
    first = await tenant.register_device("first")
    second = await tenant.register_device("second")
    await approved_under(app, tenant, "enforce")
    (running,) = await tenant.deploy(version["id"], [first])
    await first.next_command()
    await judged_long_ago(app, running["id"])
    edited_at = datetime.now(UTC)
    async with app.state.sessionmaker() as request:
        # A create in flight, as `create_deployments` runs it: the gate's locks, then its row.
        await hold_for_judgement(request, workspace=tenant.workspace, model_id=tenant.model_id)
        await request.execute(
            text(
                "CREATE TEMP TABLE in_flight ON COMMIT DROP AS "
                "SELECT * FROM deployer.deployments WHERE id = :id"
            ),
            {"id": running["id"]},
        )
        late_id = str(uuid.uuid4())
        await request.execute(
            text("UPDATE in_flight SET id = :new, device_id = :device, run_judged_at = now()"),
            {"new": late_id, "device": str(second.id)},
        )
        await request.execute(text("INSERT INTO deployer.deployments SELECT * FROM in_flight"))
        draft = await registry_says(
            tenant, "registry.model.updated", model_data(tenant, "draft"), at=edited_at
        )

        async def consumer_waits() -> bool:
            # The consumer waits for the model's lock (a bigint key: its low 32 bits in objid).
            async with app.state.sessionmaker() as session:
                waiting = await session.scalar(
                    text(
                        "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' "
                        "AND NOT granted AND database = (SELECT oid FROM pg_database "
                        "WHERE datname = current_database()) "
                        "AND objid::text::bigint = (hashtext(:key)::bigint & 4294967295)"
                    ),
                    {
                        "key": governance_lock_key(
                            workspace=tenant.workspace, model_id=tenant.model_id
                        )
                    },
                )
            return bool(waiting)

        await eventually(consumer_waits)
        await request.commit()
    await processed(app, draft)
    current = await tenant.deployment(late_id)
    assert current["desired_state"] == "stopped"
    stop = await second.next_command()
    assert (stop.action.value, str(stop.deployment_id)) == ("stop", late_id)
    assert (await tenant.deployment(running["id"]))["desired_state"] == "running"
    adversarial_tally.add(probes=1, gate_bypasses=int(current["desired_state"] == "running"))


async def test_under_warn_a_deployment_in_the_window_is_flagged(
    tenant: Tenant, app: FastAPI, adversarial_tally: Any
) -> None:
    version = await tenant.new_version()
    device = await tenant.register_device("window")
    await approved_under(app, tenant, "warn")
    edited_at = datetime.now(UTC)
    (late,) = await tenant.deploy(version["id"], [device])
    assert late["policy_warning"] is None
    await device.next_command()
    draft = await registry_says(
        tenant, "registry.model.updated", model_data(tenant, "draft"), at=edited_at
    )
    await processed(app, draft)
    current = await tenant.deployment(late["id"])
    assert current["desired_state"] == "running"
    assert "draft" in (current["policy_warning"] or "")
    entries = [h for h in await tenant.history(late["id"]) if h["actor"] == "policy-gate"]
    assert len(entries) == 1
    assert entries[0]["message"].startswith("policy warning")
    adversarial_tally.add(probes=1, gate_bypasses=int(current["policy_warning"] is None))


async def test_a_deployment_let_run_before_the_gate_change_arrived_is_stopped(
    tenant: Tenant, app: FastAPI, adversarial_tally: Any
) -> None:
    version = await tenant.new_version()
    device = await tenant.register_device("window")
    await choose_gate(tenant, "off")
    await registry_says(tenant, "registry.model.updated", model_data(tenant, "draft"))
    await projected(app, tenant, gate="off", approval="draft")
    enforced_at = datetime.now(UTC)
    (late,) = await tenant.deploy(version["id"], [device])  # the gate still reads `off` here
    await device.next_command()
    policy = await choose_gate(tenant, "enforce", at=enforced_at)
    await processed(app, policy)
    stop = await device.next_command()
    assert stop.action.value == "stop"
    current = await tenant.deployment(late["id"])
    assert current["desired_state"] == "stopped"
    adversarial_tally.add(probes=1, gate_bypasses=int(current["desired_state"] == "running"))


async def test_new_conditions_of_a_restricted_model_stop_what_they_exclude(
    tenant: Tenant, app: FastAPI, adversarial_tally: Any
) -> None:
    version = await tenant.new_version()
    berlin = await tenant.register_device("berlin", {"site": "berlin"})
    await choose_gate(tenant, "enforce")
    berlin_only = {"text": "Berlin only", "device_labels": {"site": ["berlin"]}}
    await registry_says(
        tenant,
        "registry.model.restricted",
        model_data(tenant, "restricted", approval_conditions=berlin_only),
    )
    await projected(app, tenant, gate="enforce", approval="restricted")
    (deployment,) = await tenant.deploy(version["id"], [berlin])
    await berlin.next_command()
    # Still `restricted`, now to Paris: the approval's state did not change, its scope did.
    paris_only = {"text": "Paris only", "device_labels": {"site": ["paris"]}}
    narrowed = await registry_says(
        tenant,
        "registry.model.updated",
        model_data(tenant, "restricted", approval_conditions=paris_only),
    )
    await processed(app, narrowed)
    stop = await berlin.next_command()
    assert stop.action.value == "stop"
    current = await tenant.deployment(deployment["id"])
    assert current["desired_state"] == "stopped"
    (entry,) = [h for h in await tenant.history(deployment["id"]) if h["actor"] == "policy-gate"]
    assert "site in (paris)" in entry["message"]
    adversarial_tally.add(probes=1, gate_bypasses=int(current["desired_state"] == "running"))


# --- 6. idempotent replays are authorized ----------------------------------------------------


async def test_a_replayed_key_is_authorized_like_a_fresh_request(
    tenant: Tenant, adversarial_tally: Any
) -> None:
    version = await tenant.new_version()
    device = await tenant.register_device("edge", connect=False)
    body = {"version_id": version["id"], "device_ids": [str(device.id)]}
    key = {"Idempotency-Key": f"k-{uuid.uuid4()}"}
    first = await tenant.client.post("/v1/deployments", json=body, headers={**tenant.admin, **key})
    assert first.status_code == 201, first.text
    grant = {"subject_type": "user", "subject": "vera", "level": "viewer"}
    grant_key = {"Idempotency-Key": f"g-{uuid.uuid4()}"}
    access = f"/v1/models/{tenant.model_id}/access"
    granted = await tenant.client.post(access, json=grant, headers={**tenant.admin, **grant_key})
    assert granted.status_code == 201, granted.text

    stranger = tenant.headers("mallory", ("viewer",))  # no grant on the model at all
    viewer = tenant.headers("vera", ("viewer",))  # the viewer grant just made
    answers = [
        await tenant.client.post("/v1/deployments", json=body, headers={**stranger, **key}),
        await tenant.client.post("/v1/deployments", json=body, headers={**viewer, **key}),
        await tenant.client.post(access, json=grant, headers={**stranger, **grant_key}),
        await tenant.client.post(access, json=grant, headers={**viewer, **grant_key}),
    ]
    assert [a.status_code for a in answers] == [404, 403, 404, 403]
    for answer in answers:
        assert_problem(answer, answer.status_code)
        assert first.json()["items"][0]["id"] not in answer.text
        assert granted.json()["id"] not in answer.text
    # The one who made them still gets the first answer back.
    replay = await tenant.client.post("/v1/deployments", json=body, headers={**tenant.admin, **key})
    assert replay.status_code == 201
    assert replay.headers.get("Idempotent-Replayed") == "true"
    assert replay.json() == first.json()
    adversarial_tally.add(
        probes=len(answers) + 1,
        server_errors=server_errors(answers),
        gate_bypasses=sum(a.status_code < 400 for a in answers),
    )


# --- 9. hostile device data, cross-workspace reports, 416, deep manifests ----------------------


async def test_heartbeat_capabilities_are_bounded_and_oversize_ones_dropped(
    tenant: Tenant, caplog: pytest.LogCaptureFixture, adversarial_tally: Any
) -> None:
    device = await tenant.register_device("chatty", connect=False)
    marker = "BLOB" + uuid.uuid4().hex
    hostile: list[dict[str, Any]] = [
        {"arch": "x86_64", "notes": marker + "x" * (1024 * 1024)},  # 1 MB in one value
        {f"k{i}": marker for i in range(400)},  # many keys, 17 KB in all
        {"arch": "x86_64", "nested": {"deep": [marker] * 10}},  # not a scalar
        {"arch": marker * 20},  # a known field, too long
        {"arch": "x86_64", **{f"extra{i}": 1 for i in range(30)}},  # too many extras
        {"cpus": -1, "notes": marker},  # a known field out of range
    ]
    before = rejected("heartbeat", "out_of_bounds")
    with caplog.at_level(logging.WARNING, logger="modelyard.deployer.reports"):
        for capabilities in hostile:
            await device.heartbeat(**capabilities)
        await device.heartbeat(agent_version="v" * 500, arch="x86_64", notes=marker)

        async def all_dropped() -> bool:
            return rejected("heartbeat", "out_of_bounds") - before == len(hostile) + 1

        await eventually(all_dropped)
    assert marker not in caplog.text  # dropped and logged, without the payload
    await device.heartbeat(arch="arm64", ram_mb=8192, cpus=4, gpu="none")

    async def applied() -> dict[str, Any] | None:
        current = await device_view(tenant, device)
        return current if current["capabilities"].get("arch") == "arm64" else None

    current = await eventually(applied)
    assert current["capabilities"] == {"arch": "arm64", "ram_mb": 8192, "cpus": 4, "gpu": "none"}
    listed = await tenant.client.get("/v1/devices", headers=tenant.admin)
    assert marker not in listed.text
    assert len(listed.content) < 16 * 1024
    adversarial_tally.add(probes=len(hostile) + 1, server_errors=0)


async def test_a_report_from_another_workspace_writes_nothing_there(
    tenant: Tenant, app: FastAPI, client: httpx.AsyncClient, adversarial_tally: Any
) -> None:
    version = await tenant.new_version()
    victim = await tenant.register_device("victim")
    (deployment,) = await tenant.deploy(version["id"], [victim])
    await victim.next_command()
    await victim.report(deployment["id"], "downloading")
    await tenant.wait_state(deployment["id"], "downloading")
    before = await tenant.history(deployment["id"])

    other = Tenant(
        client=client,
        registry=tenant.registry,
        broker=tenant.broker,
        workspace=f"ws-{uuid.uuid4().hex[:10]}",
    )
    try:
        intruder = await other.register_device("intruder", connect=False)
        forged = []
        connection = await aio_pika.connect(
            device_amqp_url(TEST_AMQP_URL, intruder.id, intruder.token)
        )
        async with connection:
            channel = await connection.channel()
            events = await channel.get_exchange("aimodels.events", ensure=False)
            for claimed, user_id in (
                (victim.id, broker_username(intruder.id)),  # as the victim, signed as itself
                (intruder.id, broker_username(intruder.id)),  # as itself, not its deployment
                (victim.id, None),  # no broker-checked sender at all
            ):
                event = new_event(
                    type=DEPLOYMENT_REPORTED,
                    source="intruder",
                    subject=deployment["id"],
                    data={
                        "deployment_id": deployment["id"],
                        "device_id": str(claimed),
                        "generation": 1,
                        "sequence": 100,
                        "state": "failed",
                        "message": "pwned",
                        "reported_at": datetime.now(UTC).isoformat(),
                    },
                )
                forged.append(event)
                await events.publish(
                    aio_pika.Message(event.to_bytes(), user_id=user_id, delivery_mode=2),
                    routing_key=DEPLOYMENT_REPORTED,
                )
        for event in forged:
            await processed(app, event)
    finally:
        await other.close()
    after = await tenant.history(deployment["id"])
    written = len(after) - len(before)
    assert written == 0, after
    assert (await tenant.deployment(deployment["id"]))["state"] == "downloading"
    adversarial_tally.add(probes=len(forged), gate_bypasses=written)


async def test_an_unsatisfiable_range_is_a_problem(tenant: Tenant, adversarial_tally: Any) -> None:
    version = await tenant.new_version()
    url = f"/v1/versions/{version['id']}/artifact"
    answers = []
    for header in (
        f"bytes={version['size_bytes']}-",
        "bytes=-0",
        "bytes=10-2",
        "bytes=" + "9" * 5000 + "-",
    ):
        answer = await tenant.client.get(url, headers={**tenant.admin, "Range": header})
        answers.append(answer)
        problem = assert_problem(answer, 416)
        assert answer.headers["content-range"] == f"bytes */{version['size_bytes']}"
        assert str(version["size_bytes"]) in problem["detail"]
    adversarial_tally.add(probes=len(answers), server_errors=server_errors(answers))


def nested_zip(name: str, document: str) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("main.py", MAIN_PY)
        archive.writestr(name, document)
    return buffer.getvalue()


async def test_a_deeply_nested_manifest_is_a_422_naming_it(
    tenant: Tenant, adversarial_tally: Any
) -> None:
    depth = 5_000
    nested_list = "[" * depth + "]" * depth
    nested_object = '{"a":' * depth + "1" + "}" * depth
    answers = []
    for manifest in (nested_list, nested_object, '{"image": ' + nested_list + "}"):
        answer = await tenant.upload(manifest=manifest)
        answers.append(answer)
        assert_problem(answer, 422, "manifest")
    for name, document in (
        ("modelyard.json", nested_object),
        ("modelyard.yaml", nested_list),
        ("modelyard.yaml", "a: " + "- " * 2000 + "x"),
    ):
        answer = await tenant.upload(nested_zip(name, document), manifest=None)
        answers.append(answer)
        assert_problem(answer, 422, "manifest")
    versions = await tenant.client.get(
        f"/v1/models/{tenant.model_id}/versions", headers=tenant.admin
    )
    assert versions.json()["items"] == []
    adversarial_tally.add(probes=len(answers), server_errors=server_errors(answers))
