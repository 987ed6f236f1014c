"""People's tokens from a real OpenID provider (node oidc-provider) started by the test."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa
from fastapi import APIRouter, FastAPI

from modelyard_common.auth import WORKSPACE_HEADER, Operator, Viewer, issue_token
from modelyard_common.settings import DEV_JWT_SECRET, ServiceSettings
from modelyard_common.web import create_app
from modelyard_testkit.testing import OidcProvider, assert_problem

AUDIENCE = "https://api.modelyard.test"
WORKSPACES_CLAIM = "https://modelyard.example/workspaces"  # an Auth0-style URL claim

CLIENTS: list[dict[str, Any]] = [
    {
        # Keycloak-style nested roles; an operator everywhere, admin only in ws-b.
        "client_id": "alice",
        "client_secret": "alice-secret-0123456789abcdef",
        "alg": "ES256",
        "claims": {
            "realm_access": {"roles": ["modelyard-operator", "modelyard-ws-b:admin"]},
            WORKSPACES_CLAIM: ["ws-a", "ws-b"],
        },
    },
    {
        "client_id": "bob",
        "client_secret": "bob-secret-0123456789abcdefgh",
        "alg": "RS256",
        "claims": {"realm_access": {"roles": ["modelyard-viewer"]}, WORKSPACES_CLAIM: ["ws-a"]},
    },
    {
        "client_id": "brief",
        "client_secret": "brief-secret-0123456789abcdef",
        "alg": "RS256",
        "ttl": 4,
        "claims": {"realm_access": {"roles": ["modelyard-admin"]}, WORKSPACES_CLAIM: ["ws-a"]},
    },
]


def _settings(provider: OidcProvider, **overrides: Any) -> ServiceSettings:
    values: dict[str, Any] = {
        "env": "prod",
        "oidc_issuer": provider.issuer,
        "oidc_audience": AUDIENCE,
        "oidc_roles_claim": "realm_access.roles",
        "oidc_role_prefix": "modelyard-",
        "oidc_workspaces_claim": WORKSPACES_CLAIM,
        "oidc_leeway_s": 0,
        "oidc_jwks_refresh_cooldown_s": 0,
        **overrides,
    }
    return ServiceSettings(**values)


def _app(settings: ServiceSettings) -> FastAPI:
    router = APIRouter()

    @router.get("/whoami")
    async def whoami(principal: Viewer) -> dict[str, Any]:
        return {
            "sub": principal.sub,
            "workspace": principal.workspace,
            "roles": sorted(principal.roles),
            "workspaces": sorted(principal.workspaces),
        }

    @router.post("/operate")
    async def operate(principal: Operator) -> dict[str, str]:
        return {"by": principal.sub}

    return create_app(title="t", description="t", version="0", settings=settings, routers=[router])


@pytest.fixture(scope="module")
def provider(tmp_path_factory: pytest.TempPathFactory) -> Iterator[OidcProvider]:
    started = OidcProvider(CLIENTS, audience=AUDIENCE, workdir=tmp_path_factory.mktemp("oidc"))
    started.start()
    yield started
    started.stop()


@pytest.fixture
async def client(provider: OidcProvider) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=_app(_settings(provider)))
    async with httpx.AsyncClient(transport=transport, base_url="http://svc") as c:
        yield c


def _auth(token: str, workspace: str | None = None) -> dict[str, str]:
    headers = {"Authorization": f"Bearer {token}"}
    if workspace:
        headers[WORKSPACE_HEADER] = workspace
    return headers


async def test_provider_token_is_accepted_with_mapped_roles_and_workspace(
    provider: OidcProvider, client: httpx.AsyncClient
) -> None:
    alice = await asyncio.to_thread(provider.token, "alice")
    assert jwt.get_unverified_header(alice)["alg"] == "ES256"
    in_b = await client.get("/whoami", headers=_auth(alice, "ws-b"))
    assert in_b.status_code == 200, in_b.text
    assert in_b.json() == {
        "sub": "alice",
        "workspace": "ws-b",
        "roles": ["admin", "operator"],
        "workspaces": ["ws-a", "ws-b"],
    }
    in_a = await client.get("/whoami", headers=_auth(alice, "ws-a"))
    assert in_a.json()["roles"] == ["operator"]  # the admin role is scoped to ws-b
    assert (await client.post("/operate", headers=_auth(alice, "ws-a"))).status_code == 200

    bob = await asyncio.to_thread(provider.token, "bob")
    assert jwt.get_unverified_header(bob)["alg"] == "RS256"
    only = await client.get("/whoami", headers=_auth(bob))  # one workspace: no header needed
    assert only.json() == {
        "sub": "bob",
        "workspace": "ws-a",
        "roles": ["viewer"],
        "workspaces": ["ws-a"],
    }
    assert_problem(await client.post("/operate", headers=_auth(bob)), 403)


async def test_a_workspace_is_chosen_only_among_those_granted(
    provider: OidcProvider, client: httpx.AsyncClient
) -> None:
    alice = await asyncio.to_thread(provider.token, "alice")
    several = assert_problem(await client.get("/whoami", headers=_auth(alice)), 403)
    assert WORKSPACE_HEADER in several["detail"]
    assert several["workspaces"] == ["ws-a", "ws-b"]
    bob = await asyncio.to_thread(provider.token, "bob")
    assert_problem(await client.get("/whoami", headers=_auth(bob, "ws-b")), 403)


async def test_token_for_another_audience_is_401(
    provider: OidcProvider, client: httpx.AsyncClient
) -> None:
    other = await asyncio.to_thread(provider.token, "alice", resource="https://other.example")
    assert jwt.decode(other, options={"verify_signature": False})["aud"] == "https://other.example"
    problem = assert_problem(await client.get("/whoami", headers=_auth(other, "ws-a")), 401)
    assert "audience" in problem["detail"]


async def test_expired_token_is_401(provider: OidcProvider, client: httpx.AsyncClient) -> None:
    warm = await asyncio.to_thread(
        provider.token, "bob"
    )  # the JWKS is fetched before the clock runs
    assert (await client.get("/whoami", headers=_auth(warm))).status_code == 200
    brief = await asyncio.to_thread(provider.token, "brief")
    assert (await client.get("/whoami", headers=_auth(brief))).status_code == 200
    expires = jwt.decode(brief, options={"verify_signature": False})["exp"]
    await asyncio.sleep(max(0.0, expires + 1 - time.time()))  # past `exp`, no leeway
    problem = assert_problem(await client.get("/whoami", headers=_auth(brief)), 401)
    assert "expired" in problem["detail"]


@pytest.mark.parametrize("kid", ["rogue", "rs-1"])
async def test_token_signed_by_a_key_not_in_the_jwks_is_401(
    provider: OidcProvider, client: httpx.AsyncClient, kid: str
) -> None:
    # Right issuer, audience and claims, signed by a key the provider never published (under an
    # unknown key id, and under the id of a real key).
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    now = datetime.now(UTC)
    forged = jwt.encode(
        {
            "iss": provider.issuer,
            "aud": AUDIENCE,
            "sub": "mallory",
            "iat": now,
            "exp": now + timedelta(minutes=5),
            "realm_access": {"roles": ["modelyard-admin"]},
            WORKSPACES_CLAIM: ["ws-a"],
        },
        key,
        algorithm="RS256",
        headers={"kid": kid},
    )
    assert_problem(await client.get("/whoami", headers=_auth(forged)), 401)


async def test_hs256_dev_token_is_401_in_prod_and_accepted_in_dev(
    provider: OidcProvider, client: httpx.AsyncClient
) -> None:
    dev = issue_token(secret=DEV_JWT_SECRET, sub="dev", roles=["admin"], workspace="ws-a")
    problem = assert_problem(await client.get("/whoami", headers=_auth(dev)), 401)
    assert "MODELYARD_ENV=dev" in problem["detail"]
    dev_app = _app(_settings(provider, env="dev"))
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=dev_app), base_url="http://svc"
    ) as in_dev:
        answer = await in_dev.get("/whoami", headers=_auth(dev))
        assert answer.status_code == 200, answer.text
        assert answer.json()["roles"] == ["admin"]


async def test_rotated_signing_key_is_picked_up_without_a_restart(tmp_path: Path) -> None:
    idp = OidcProvider(CLIENTS, audience=AUDIENCE, workdir=tmp_path).start()
    try:
        app = _app(_settings(idp))
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://svc"
        ) as svc:
            before = await asyncio.to_thread(idp.token, "bob")
            assert jwt.get_unverified_header(before)["kid"] == "rs-1"
            assert (await svc.get("/whoami", headers=_auth(before))).status_code == 200

            await asyncio.to_thread(idp.rotate, keep_old=False)  # the old key is withdrawn
            after = await asyncio.to_thread(idp.token, "bob")
            assert jwt.get_unverified_header(after)["kid"] == "rs-2"
            answer = await svc.get("/whoami", headers=_auth(after))
            assert answer.status_code == 200, answer.text
            # The JWKS was refetched for the new key id: the withdrawn key no longer verifies.
            assert_problem(await svc.get("/whoami", headers=_auth(before)), 401)
    finally:
        idp.stop()
