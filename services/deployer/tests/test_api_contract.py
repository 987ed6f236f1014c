"""The OpenAPI document frontend teams generate clients from: complete and stable."""

from __future__ import annotations

import httpx

EXPECTED_OPERATIONS = {
    "create_model_version",
    "list_model_versions",
    "get_model_version",
    "delete_model_version",
    "download_model_version",
    "create_device",
    "list_devices",
    "get_device",
    "update_device",
    "rotate_device_token",
    "revoke_device",
    "list_device_deployments",
    "create_deployment",
    "list_deployments",
    "get_deployment",
    "get_deployment_history",
    "start_deployment",
    "stop_deployment",
    "restart_deployment",
    "rollback_deployment",
    "cancel_deployment",
    "redeploy_deployment",
    "remove_deployment",
    "list_model_deployments",
    "list_model_deployment_history",
    "list_access_grants",
    "create_access_grant",
    "get_access_grant",
    "update_access_grant",
    "delete_access_grant",
    "create_rollout",
    "list_rollouts",
    "get_rollout",
    "get_rollout_history",
    "pause_rollout",
    "resume_rollout",
    "abort_rollout",
}


async def test_every_route_has_a_stable_operation_id_summary_and_errors(
    client: httpx.AsyncClient,
) -> None:
    document = (await client.get("/openapi.json")).json()
    operations = {
        operation["operationId"]: operation
        for path in document["paths"].values()
        for operation in path.values()
    }

    assert set(operations) >= EXPECTED_OPERATIONS
    for operation_id in EXPECTED_OPERATIONS:
        operation = operations[operation_id]
        assert operation.get("summary"), operation_id
        assert any(code.startswith("4") for code in operation["responses"]), operation_id
    schemas = document["components"]["schemas"]
    for name in ("ModelVersion", "Device", "Deployment", "HistoryEntry", "Grant", "Problem"):
        assert schemas[name].get("examples"), name
    upload = operations["create_model_version"]["requestBody"]["content"]
    assert "file" in upload["multipart/form-data"]["schema"]["properties"]


async def test_health_endpoints(client: httpx.AsyncClient) -> None:
    assert (await client.get("/healthz")).status_code == 200
    ready = await client.get("/readyz")
    assert ready.status_code == 200, ready.text
    assert ready.json()["checks"] == {"database": "ok", "broker": "ok"}
