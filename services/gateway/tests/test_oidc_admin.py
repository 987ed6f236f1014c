"""The gateway in prod mode: admins from a real OpenID provider create instances, operators
manage them."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable
from pathlib import Path

import httpx
from gateway_testkit import GatewayServer

from modelyard_gateway.settings import GatewaySettings
from modelyard_testkit.testing import OidcProvider, assert_problem

AUDIENCE = "api://modelyard-gateway"


async def test_operator_and_editor_tokens_from_the_provider(
    make_settings: Callable[..., GatewaySettings], tmp_path: Path
) -> None:
    workspace = f"ws-{uuid.uuid4().hex[:8]}"
    clients = [
        {
            "client_id": "ops",
            "client_secret": "ops-secret-0123456789abcdefgh",
            "claims": {"groups": ["modelyard-operator"], "workspaces": [workspace]},
        },
        {
            "client_id": "adm",
            "client_secret": "adm-secret-0123456789abcdefgh",
            "claims": {"groups": ["modelyard-admin"], "workspaces": [workspace]},
        },
        {
            "client_id": "ed",
            "client_secret": "ed-secret-0123456789abcdefghi",
            "claims": {"groups": ["modelyard-editor"], "workspaces": [workspace]},
        },
    ]
    idp = OidcProvider(clients, audience=AUDIENCE, workdir=tmp_path).start()
    server = GatewayServer(
        make_settings(
            env="prod",
            oidc_issuer=idp.issuer,
            oidc_audience=AUDIENCE,
            oidc_roles_claim="groups",
            oidc_role_prefix="modelyard-",
            consume_events=False,
        )
    )
    await asyncio.to_thread(server.start)
    try:
        ops = await asyncio.to_thread(idp.token, "ops")
        adm = await asyncio.to_thread(idp.token, "adm")
        ed = await asyncio.to_thread(idp.token, "ed")
        body = {
            "name": f"i-{uuid.uuid4().hex[:6]}",
            "kind": "cloud",
            "base_url": "https://api.example.com/v1",
            "token": "sk-" + "x" * 30,
            "upstream_model": "m",
        }
        async with httpx.AsyncClient(base_url=server.url, timeout=10) as http:
            as_ed = {"Authorization": f"Bearer {ed}"}
            as_ops = {"Authorization": f"Bearer {ops}"}
            as_adm = {"Authorization": f"Bearer {adm}"}
            assert_problem(await http.post("/v1/instances", json=body, headers=as_ed), 403)
            # Only admins say where traffic goes: an operator manages instances, not places.
            assert_problem(await http.post("/v1/instances", json=body, headers=as_ops), 403)
            created = await http.post("/v1/instances", json=body, headers=as_adm)
            assert created.status_code == 201, created.text
            disabled = await http.patch(
                f"/v1/instances/{created.json()['id']}",
                json={"enabled": False},
                headers={**as_ops, "If-Match": created.json()["etag"]},
            )
            assert disabled.status_code == 200, disabled.text
            listed = await http.get("/v1/instances", headers=as_ed)
            assert [i["id"] for i in listed.json()["items"]] == [created.json()["id"]]
            assert listed.json()["items"][0]["has_token"] is True
    finally:
        await asyncio.to_thread(server.stop)
        idp.stop()
