"""Bad input found by fuzzing the deployer: each is a clear 4xx problem and changes nothing."""

from __future__ import annotations

import base64
import json
import uuid

from deployer_testkit import DEFAULT_MANIFEST, Tenant, bearer
from modelyard_testkit.testing import assert_problem


def _cursor(payload: object) -> str:
    return base64.urlsafe_b64encode(json.dumps(payload).encode()).decode().rstrip("=")


async def test_nul_in_devices_grants_deployments_and_filters_is_a_422(tenant: Tenant) -> None:
    client, admin = tenant.client, tenant.admin
    for body, field in (
        ({"name": "a\u0000b"}, "name"),
        ({"name": "ok", "labels": {"site": "\u0000"}}, "labels.site"),
    ):
        assert_problem(await client.post("/v1/devices", json=body, headers=admin), 422, field)
    grant = {"subject_type": "user", "subject": "bob\u0000", "level": "viewer"}
    response = await client.post(f"/v1/models/{tenant.model_id}/access", json=grant, headers=admin)
    assert_problem(response, 422, "subject")
    deployment = {"version_id": str(uuid.uuid4()), "selector": {"site": "a\u0000"}}
    response = await client.post("/v1/deployments", json=deployment, headers=admin)
    assert_problem(response, 422, "selector.site")
    for query in ("label=site=%00", "name=%00"):
        assert_problem(await client.get(f"/v1/devices?{query}", headers=admin), 422)
    listed = await client.get("/v1/devices", headers=admin)
    assert listed.json()["items"] == []


async def test_nul_in_upload_title_comment_and_manifest_env_is_a_422(tenant: Tenant) -> None:
    for fields, field in (
        ({"title": "v\u0000"}, "title"),
        ({"comment": "c\u0000"}, "comment"),
    ):
        assert_problem(await tenant.upload(**fields), 422, field)
    manifest = {**DEFAULT_MANIFEST, "env": {"LOG_LEVEL": "in\u0000fo"}}
    assert_problem(await tenant.upload(manifest=manifest), 422, "manifest.env.LOG_LEVEL")
    versions = await tenant.client.get(
        f"/v1/models/{tenant.model_id}/versions", headers=tenant.admin
    )
    assert versions.json()["items"] == []


async def test_the_upload_is_not_held_to_the_json_body_limit(tenant: Tenant) -> None:
    # The upload streams under max_upload_bytes, far above the 1 MiB of JSON routes.
    padding = "x" * (2 * 1024 * 1024)
    version = await tenant.new_version(comment="", title="big", manifest=DEFAULT_MANIFEST)
    assert version["title"] == "big"
    response = await tenant.client.post(
        "/v1/devices", json={"name": "d", "labels": {"pad": padding}}, headers=tenant.admin
    )
    assert_problem(response, 413)


async def test_a_crafted_cursor_is_a_422_on_every_list(tenant: Tenant) -> None:
    device = await tenant.register_device("edge-1", connect=False)
    for path, sort in (
        ("/v1/devices", "name"),
        ("/v1/deployments", "-created_at"),
        (f"/v1/devices/{device.id}/deployments", "-created_at"),
        (f"/v1/models/{tenant.model_id}/versions", "-number"),
        (f"/v1/models/{tenant.model_id}/access", "created_at"),
    ):
        for values in ([1, 2], ["x", "not-a-uuid"], [2**70, {"uuid": str(uuid.uuid4())}]):
            cursor = _cursor({"s": sort, "v": values})
            response = await tenant.client.get(
                path, params={"cursor": cursor, "sort": sort}, headers=tenant.admin
            )
            assert_problem(response, 422, "cursor")


async def test_over_long_claims_are_a_401(tenant: Tenant) -> None:
    for headers in (
        bearer("root", ["admin"], "w" * 250),
        bearer("s" * 300, ["admin"], tenant.workspace),
    ):
        response = await tenant.client.post("/v1/devices", json={"name": "d"}, headers=headers)
        assert_problem(response, 401)


async def test_openapi_states_one_deployment_target_and_label_keys(tenant: Tenant) -> None:
    spec = (await tenant.client.get("/openapi.json")).json()
    create = spec["components"]["schemas"]["DeploymentCreate"]
    targets = [variant["required"] for variant in create["oneOf"]]
    assert targets == [["device_ids"], ["selector"]]
    labels = spec["components"]["schemas"]["DeviceCreate"]["properties"]["labels"]
    assert labels["propertyNames"]["pattern"].startswith("^[A-Za-z0-9]")
    upload = spec["paths"]["/v1/models/{model_id}/versions"]["post"]["responses"]
    assert list(upload["413"]["content"]) == ["application/problem+json"]
