"""Tokens and workspaces: who may do what, and nobody sees another workspace's rows."""

from __future__ import annotations

import base64
import json
import uuid
from datetime import timedelta
from typing import Any

import httpx
import jwt
import pytest

from modelyard_common.auth import issue_token
from modelyard_testkit.testing import TEST_JWT_SECRET, assert_problem, create_ok

Headers = dict[str, str]


def _b64(data: dict[str, Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).decode().rstrip("=")


@pytest.mark.parametrize(
    "token",
    [
        pytest.param(
            _b64({"alg": "none", "typ": "JWT"})
            + "."
            + _b64({"sub": "mallory", "roles": ["admin"], "workspace": "w", "exp": 4102444800})
            + ".",
            id="alg-none",
        ),
        pytest.param(
            issue_token(
                secret="another-secret-of-sufficient-length",
                sub="m",
                roles=["admin"],
                workspace="w",
            ),
            id="wrong-signature",
        ),
        pytest.param(
            issue_token(
                secret=TEST_JWT_SECRET,
                sub="m",
                roles=["admin"],
                workspace="w",
                ttl=timedelta(seconds=-10),
            ),
            id="expired",
        ),
        pytest.param(
            jwt.encode({"sub": "m", "roles": ["admin"], "exp": 4102444800}, TEST_JWT_SECRET),
            id="no-workspace",
        ),
        pytest.param("garbage", id="garbage"),
    ],
)
async def test_bad_tokens_are_401(
    client: httpx.AsyncClient, token: str, model_body: dict[str, Any]
) -> None:
    response = await client.post(
        "/v1/models", json=model_body, headers={"Authorization": f"Bearer {token}"}
    )
    assert_problem(response, 401)
    assert response.headers["www-authenticate"] == "Bearer"


async def test_missing_token_is_401(client: httpx.AsyncClient) -> None:
    assert_problem(await client.get("/v1/models"), 401)


async def test_viewer_reads_but_cannot_write(
    client: httpx.AsyncClient, as_role: Any, editor: Headers, model_body: dict[str, Any]
) -> None:
    created = await create_ok(client, "/v1/models", model_body, editor)
    viewer = as_role("viewer")
    assert (await client.get(f"/v1/models/{created['id']}", headers=viewer)).status_code == 200
    assert_problem(await client.post("/v1/models", json=model_body, headers=viewer), 403)
    assert_problem(await client.post(f"/v1/models/{created['id']}/archive", headers=viewer), 403)
    listed = (await client.get("/v1/models", headers=viewer)).json()["items"]
    assert [m["archived"] for m in listed] == [False]


async def test_other_workspace_ids_are_not_found(
    client: httpx.AsyncClient,
    editor: Headers,
    as_role: Any,
    model_body: dict[str, Any],
    system_body: dict[str, Any],
) -> None:
    model = await create_ok(client, "/v1/models", model_body, editor)
    system = await create_ok(client, "/v1/systems", system_body, editor)
    intruder = as_role("admin", ws=f"intruder-{uuid.uuid4().hex}")
    mid, sid = model["id"], system["id"]
    attempts = [
        client.get(f"/v1/models/{mid}", headers=intruder),
        client.patch(
            f"/v1/models/{mid}", json={"name": "pwned"}, headers={**intruder, "If-Match": "*"}
        ),
        client.delete(f"/v1/models/{mid}", headers=intruder),
        client.post(f"/v1/models/{mid}/archive", headers=intruder),
        client.get(f"/v1/models/{mid}/systems", headers=intruder),
        client.get(f"/v1/models/{mid}/history", headers=intruder),
        client.get(f"/v1/systems/{sid}", headers=intruder),
        client.post(
            f"/v1/systems/{sid}/models",
            json={"model_id": mid, "description_of_use": "x"},
            headers=intruder,
        ),
    ]
    for attempt in attempts:
        assert_problem(await attempt, 404)
    assert (await client.get("/v1/models", headers=intruder)).json()["items"] == []
    assert (await client.get(f"/v1/models?ids={mid}", headers=intruder)).json()["items"] == []
    # The intruder's own system cannot link the victim's model either.
    own = await create_ok(client, "/v1/systems", system_body, intruder)
    assert_problem(
        await client.post(
            f"/v1/systems/{own['id']}/models",
            json={"model_id": mid, "description_of_use": "x"},
            headers=intruder,
        ),
        404,
    )
    still = (await client.get(f"/v1/models/{mid}", headers=editor)).json()
    assert still["name"] == "fraud-detector"
    assert still["archived"] is False
