"""Bad input found by fuzzing the gateway: each is a clear 4xx and changes nothing."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx
import pytest
from gateway_testkit import Admin, FakeBackend, GatewayServer

from modelyard_common.auth import issue_token
from modelyard_testkit.testing import assert_problem


@pytest.mark.parametrize("stream", [None, -60262, "true", 1, [], {}])
async def test_stream_must_be_a_boolean(
    gateway: GatewayServer,
    admin: Admin,
    backends: Callable[[str], FakeBackend],
    stream: Any,
) -> None:
    await admin.group("chat", [await admin.instance(backends("s1"))])
    key = await admin.key()
    async with httpx.AsyncClient(base_url=gateway.url, timeout=10) as http:
        response = await http.post(
            "/v1/chat/completions",
            json={
                "model": "chat",
                "messages": [{"role": "user", "content": "x"}],
                "stream": stream,
            },
            headers={"Authorization": f"Bearer {key}"},
        )
    assert response.status_code == 400, response.text
    assert response.json()["error"]["param"] == "stream"


async def test_nul_in_admin_fields_is_a_422_and_stores_nothing(admin: Admin) -> None:
    local = {"kind": "local", "host": "127.0.0.1", "port": 9, "upstream_model": "m"}
    for path, body, field in (
        ("/v1/groups", {"name": "g\u0000"}, "name"),
        ("/v1/instances", {**local, "name": "i", "upstream_model": "m\u0000"}, "upstream_model"),
        (
            "/v1/instances",
            {**local, "name": "i", "extra_headers": {"X-A": "\u0000"}},
            "extra_headers.X-A",
        ),
        ("/v1/keys", {"name": "k\u0000"}, "name"),
    ):
        assert_problem(await admin.http.post(path, json=body), 422, field)
    for path in ("/v1/groups", "/v1/instances", "/v1/keys"):
        assert (await admin.http.get(path)).json()["items"] == []


@pytest.mark.parametrize("field", ["extra_headers", "secret_headers"])
async def test_a_header_value_that_cannot_go_on_the_wire_is_a_422(admin: Admin, field: str) -> None:
    # Header values are Latin-1 text (RFC 9110 obs-text at most): U+8ED60 could not be sent, and
    # once stored it made every probe of the instance a 500.
    body = {
        "name": "i",
        "kind": "local",
        "host": "127.0.0.1",
        "port": 9,
        "upstream_model": "m",
        field: {"x-region": "eu-\U0008ed60"},
    }
    assert_problem(await admin.http.post("/v1/instances", json=body), 422, field)
    accepted = await admin.http.post(
        "/v1/instances", json={**body, field: {"x-region": "Zürich\tnord"}}
    )
    assert accepted.status_code == 201, accepted.text
    checked = await admin.http.post(f"/v1/instances/{accepted.json()['id']}/check")
    assert checked.status_code == 200, checked.text  # probed (port 9 refuses): no 500


@pytest.mark.parametrize("host", ["p\u00ec\u4e2d", "a b", "-x", "[zz]", "h:80", "[6fCc]"])
async def test_an_instance_host_that_no_url_can_hold_is_a_422(admin: Admin, host: str) -> None:
    body = {"name": "i", "kind": "local", "host": host, "port": 401, "upstream_model": "m"}
    assert_problem(await admin.http.post("/v1/instances", json=body), 422, "host")


async def test_a_cloud_instance_needs_a_parsable_base_url(admin: Admin) -> None:
    body = {"name": "c", "kind": "cloud", "upstream_model": "m"}
    for base_url in (None, "0", "http://a@", "http://x:99999", "http://[6fCc]/v1"):
        response = await admin.http.post("/v1/instances", json={**body, "base_url": base_url})
        assert_problem(response, 422)


async def test_over_long_claims_are_a_401(gateway: GatewayServer) -> None:
    secret = gateway.settings.jwt_secret
    for sub, workspace in (("bob", "w" * 250), ("s" * 300, "ws")):
        token = issue_token(secret=secret, sub=sub, roles=["admin"], workspace=workspace)
        async with httpx.AsyncClient(base_url=gateway.url, timeout=10) as http:
            response = await http.post(
                "/v1/keys", json={"name": "k"}, headers={"Authorization": f"Bearer {token}"}
            )
        assert_problem(response, 401)


async def test_openapi_states_what_each_instance_kind_needs(gateway: GatewayServer) -> None:
    async with httpx.AsyncClient(base_url=gateway.url, timeout=10) as http:
        spec = (await http.get("/openapi.json")).json()
    rules = spec["components"]["schemas"]["InstanceCreate"]["allOf"]
    needs = {r["if"]["properties"]["kind"]["const"]: r["then"]["required"] for r in rules}
    assert needs == {"local": ["host", "port"], "cloud": ["base_url"]}
    patch = spec["paths"]["/v1/groups/{group_id}"]["patch"]
    assert list(patch["responses"]["422"]["content"]) == ["application/problem+json"]
