"""Access: per-model grants, 404 for what a caller may not see, device-token scope, workspaces."""

from __future__ import annotations

import uuid

from deployer_testkit import Tenant, bearer


async def grant(
    tenant: Tenant, subject: str, level: str, subject_type: str = "user"
) -> dict[str, str]:
    response = await tenant.client.post(
        f"/v1/models/{tenant.model_id}/access",
        json={"subject_type": subject_type, "subject": subject, "level": level},
        headers=tenant.admin,
    )
    assert response.status_code == 201, response.text
    body: dict[str, str] = response.json()
    return body


async def test_without_a_grant_the_models_versions_do_not_exist(tenant: Tenant) -> None:
    version = await tenant.new_version()
    device = await tenant.register_device("d", connect=False)
    (deployment,) = await tenant.deploy(version["id"], [device])
    stranger = tenant.headers("mallory", ("editor",))

    responses = [
        await tenant.client.get(f"/v1/models/{tenant.model_id}/versions", headers=stranger),
        await tenant.client.get(f"/v1/versions/{version['id']}", headers=stranger),
        await tenant.client.get(version["artifact_url"], headers=stranger),
        await tenant.client.get(f"/v1/deployments/{deployment['id']}", headers=stranger),
        await tenant.client.get(f"/v1/deployments/{deployment['id']}/history", headers=stranger),
        await tenant.client.post(f"/v1/deployments/{deployment['id']}/stop", headers=stranger),
        await tenant.upload(headers=stranger),
    ]

    assert [r.status_code for r in responses] == [404] * len(responses)
    listed = await tenant.client.get("/v1/deployments", headers=stranger)
    assert listed.json()["items"] == []
    manage = await tenant.client.get(f"/v1/devices/{device.id}/deployments", headers=stranger)
    assert manage.json()["items"] == []


async def test_each_grant_level_allows_what_it_says(tenant: Tenant) -> None:
    version = await tenant.new_version()
    device = await tenant.register_device("d", connect=False)
    await grant(tenant, "vera", "viewer")
    await grant(tenant, "dan", "deployer")
    await grant(tenant, "eve", "editor")
    viewer = tenant.headers("vera", ("viewer",))
    deployer = tenant.headers("dan", ("viewer",))
    editor = tenant.headers("eve", ("viewer",))
    deploy_body = {"version_id": version["id"], "device_ids": [str(device.id)]}

    seen = await tenant.client.get(f"/v1/versions/{version['id']}", headers=viewer)
    downloaded = await tenant.client.get(version["artifact_url"], headers=viewer)
    viewer_deploys = await tenant.client.post("/v1/deployments", json=deploy_body, headers=viewer)
    deployer_deploys = await tenant.client.post(
        "/v1/deployments", json=deploy_body, headers=deployer
    )
    deployer_uploads = await tenant.upload(headers=deployer)
    deployer_deletes = await tenant.client.delete(f"/v1/versions/{version['id']}", headers=deployer)
    editor_uploads = await tenant.upload(headers=editor)

    assert seen.status_code == 200
    assert downloaded.status_code == 200
    assert viewer_deploys.status_code == 403
    assert deployer_deploys.status_code == 201, deployer_deploys.text
    assert deployer_uploads.status_code == 403
    assert deployer_deletes.status_code == 403
    assert editor_uploads.status_code == 201
    assert editor_uploads.json()["created_by"] == "eve"


async def test_role_grants_match_any_of_the_callers_roles(tenant: Tenant) -> None:
    version = await tenant.new_version()
    await grant(tenant, "ml-team", "viewer", subject_type="role")

    member = await tenant.client.get(
        f"/v1/versions/{version['id']}", headers=tenant.headers("zoe", ("viewer", "ml-team"))
    )
    outsider = await tenant.client.get(
        f"/v1/versions/{version['id']}", headers=tenant.headers("yan", ("viewer", "ops"))
    )

    assert member.status_code == 200
    assert outsider.status_code == 404


async def test_grants_are_managed_with_etags_and_conflicts(tenant: Tenant) -> None:
    created = await grant(tenant, "sam", "viewer")
    url = f"/v1/models/{tenant.model_id}/access/{created['id']}"

    duplicate = await tenant.client.post(
        f"/v1/models/{tenant.model_id}/access",
        json={"subject_type": "user", "subject": "sam", "level": "editor"},
        headers=tenant.admin,
    )
    no_etag = await tenant.client.patch(url, json={"level": "editor"}, headers=tenant.admin)
    updated = await tenant.client.patch(
        url, json={"level": "editor"}, headers={**tenant.admin, "If-Match": created["etag"]}
    )
    stale = await tenant.client.patch(
        url, json={"level": "viewer"}, headers={**tenant.admin, "If-Match": created["etag"]}
    )
    # Sam, now an editor of the model, may manage its grants too.
    sam_lists = await tenant.client.get(
        f"/v1/models/{tenant.model_id}/access", headers=tenant.headers("sam", ("viewer",))
    )
    removed = await tenant.client.delete(url, headers=tenant.admin)
    sam_after = await tenant.client.get(
        f"/v1/models/{tenant.model_id}/access", headers=tenant.headers("sam", ("viewer",))
    )

    assert duplicate.status_code == 409
    assert no_etag.status_code == 428
    assert updated.status_code == 200
    assert updated.json()["level"] == "editor"
    assert stale.status_code == 412
    assert [g["subject"] for g in sam_lists.json()["items"]] == ["sam"]
    assert removed.status_code == 204
    assert sam_after.status_code == 404


async def test_device_downloads_only_versions_deployed_to_it(tenant: Tenant) -> None:
    deployed = await tenant.new_version()
    not_deployed = await tenant.new_version()
    mine = await tenant.register_device("mine", connect=False)
    other = await tenant.register_device("other", connect=False)
    await tenant.deploy(deployed["id"], [mine])

    own = await mine.download(deployed["artifact_url"])
    resumed = await mine.download(deployed["artifact_url"], {"Range": "bytes=10-"})
    undeployed = await mine.download(not_deployed["artifact_url"])
    foreign = await other.download(deployed["artifact_url"])
    forged = await mine.client.get(
        deployed["artifact_url"], headers={"Authorization": "Bearer mydev_not-a-real-token"}
    )
    device_on_user_api = await mine.client.get(
        f"/v1/versions/{deployed['id']}", headers={"Authorization": f"Bearer {mine.token}"}
    )

    assert own.status_code == 200
    assert resumed.status_code == 206
    assert resumed.content == own.content[10:]
    assert undeployed.status_code == 404
    assert foreign.status_code == 404
    assert forged.status_code == 401
    assert device_on_user_api.status_code == 401


async def test_other_workspaces_ids_are_404(tenant: Tenant) -> None:
    version = await tenant.new_version()
    device = await tenant.register_device("d", connect=False)
    (deployment,) = await tenant.deploy(version["id"], [device])
    grant_body = await grant(tenant, "ann", "viewer")
    outsider = bearer("root", ["admin"], f"other-{uuid.uuid4().hex[:6]}")

    paths = [
        f"/v1/versions/{version['id']}",
        version["artifact_url"],
        f"/v1/devices/{device.id}",
        f"/v1/devices/{device.id}/deployments",
        f"/v1/deployments/{deployment['id']}",
        f"/v1/deployments/{deployment['id']}/history",
        f"/v1/models/{tenant.model_id}/access/{grant_body['id']}",
    ]
    statuses = [(await tenant.client.get(p, headers=outsider)).status_code for p in paths]
    deploy_across = await tenant.client.post(
        "/v1/deployments",
        json={"version_id": version["id"], "device_ids": [str(device.id)]},
        headers=outsider,
    )
    upload_across = await tenant.upload(headers=outsider)

    assert statuses == [404] * len(paths)
    assert deploy_across.status_code == 404
    assert upload_across.status_code == 404
    listed = await tenant.client.get("/v1/devices", headers=outsider)
    assert listed.json()["items"] == []


async def test_requests_without_a_valid_token_are_401(tenant: Tenant) -> None:
    version = await tenant.new_version()

    anonymous = await tenant.client.get(f"/v1/versions/{version['id']}")
    forged = await tenant.client.get(
        f"/v1/versions/{version['id']}",
        headers=bearer("root", ["admin"], tenant.workspace) | {"Authorization": "Bearer x.y.z"},
    )

    assert anonymous.status_code == 401
    assert forged.status_code == 401
    assert anonymous.headers["content-type"] == "application/problem+json"
