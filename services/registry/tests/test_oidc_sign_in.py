"""The registry in prod mode: people sign in with tokens of a real OpenID provider."""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path
from typing import Any

import httpx
from asgi_lifespan import LifespanManager

from modelyard_common.auth import WORKSPACE_HEADER, issue_token
from modelyard_registry.app import create_app
from modelyard_registry.settings import RegistrySettings
from modelyard_testkit.testing import TEST_JWT_SECRET, OidcProvider, assert_problem

AUDIENCE = "api://modelyard-registry"


async def test_provider_tokens_work_per_workspace_and_dev_tokens_do_not(
    settings: RegistrySettings, model_body: dict[str, Any], tmp_path: Path
) -> None:
    first, second = f"ws-{uuid.uuid4().hex[:8]}", f"ws-{uuid.uuid4().hex[:8]}"
    clients = [
        {
            "client_id": "carol",
            "client_secret": "carol-secret-0123456789abcdef",
            "claims": {"groups": [first, second], "roles": ["editor"]},
        }
    ]
    idp = OidcProvider(clients, audience=AUDIENCE, workdir=tmp_path).start()
    try:
        prod = settings.model_copy(
            update={
                "env": "prod",
                "oidc_issuer": idp.issuer,
                "oidc_audience": AUDIENCE,
                "oidc_workspaces_claim": "groups",
            }
        )
        app = create_app(prod)
        async with (
            LifespanManager(app, startup_timeout=30),
            httpx.AsyncClient(
                transport=httpx.ASGITransport(app=app), base_url="http://registry"
            ) as client,
        ):
            token = await asyncio.to_thread(idp.token, "carol")
            auth = {"Authorization": f"Bearer {token}"}
            created = await client.post(
                "/v1/models", json=model_body, headers={**auth, WORKSPACE_HEADER: first}
            )
            assert created.status_code == 201, created.text
            in_first = await client.get("/v1/models", headers={**auth, WORKSPACE_HEADER: first})
            in_second = await client.get("/v1/models", headers={**auth, WORKSPACE_HEADER: second})
            assert [m["id"] for m in in_first.json()["items"]] == [created.json()["id"]]
            assert in_second.json()["items"] == []
            assert_problem(
                await client.get("/v1/models", headers={**auth, WORKSPACE_HEADER: "elsewhere"}),
                403,
            )
            dev = issue_token(secret=TEST_JWT_SECRET, sub="d", roles=["admin"], workspace=first)
            assert_problem(
                await client.get("/v1/models", headers={"Authorization": f"Bearer {dev}"}), 401
            )
    finally:
        idp.stop()
