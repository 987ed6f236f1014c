"""Bad input found by fuzzing the registry: each is a clear 4xx problem and changes nothing."""

from __future__ import annotations

import base64
import json
from collections.abc import Callable

import httpx

from modelyard_testkit.testing import assert_problem, bearer


def _cursor(payload: object) -> str:
    return base64.urlsafe_b64encode(json.dumps(payload).encode()).decode().rstrip("=")


async def test_nul_in_fields_and_filters_is_a_422_and_stores_nothing(
    client: httpx.AsyncClient, editor: dict[str, str]
) -> None:
    response = await client.post(
        "/v1/models", json={"name": "a\u0000b", "learning_type": "supervised"}, headers=editor
    )
    assert_problem(response, 422, "name")
    response = await client.post(
        "/v1/systems", json={"name": "s", "risk_level": "high", "tags": ["x\u0000"]}, headers=editor
    )
    assert_problem(response, 422, "tags.0")
    for query in ("q=%00", "tag=%00", "provider=a%00"):
        assert_problem(await client.get(f"/v1/models?{query}", headers=editor), 422)
    listed = await client.get("/v1/models", headers=editor)
    assert listed.status_code == 200
    assert listed.json()["items"] == []


async def test_a_crafted_cursor_is_a_422_on_every_list(
    client: httpx.AsyncClient, editor: dict[str, str]
) -> None:
    created = await client.post(
        "/v1/models", json={"name": "m", "learning_type": "supervised"}, headers=editor
    )
    model_id = created.json()["id"]
    for path, sort in (
        ("/v1/models", "name"),
        ("/v1/systems", "name"),
        (f"/v1/models/{model_id}/history", "at"),
    ):
        for values in ([1, 2], ["x"], [{"dt": "2026-01-01T00:00:00"}, {"uuid": "nope"}]):
            cursor = _cursor({"s": sort, "v": values})
            response = await client.get(path, params={"cursor": cursor}, headers=editor)
            assert_problem(response, 422, "cursor")


async def test_over_long_claims_are_a_401_not_a_failed_insert(client: httpx.AsyncClient) -> None:
    body = {"name": "m", "learning_type": "supervised"}
    for headers in (
        bearer("editor", "w" * 150),
        bearer("editor", "ws-long-sub", sub="s" * 300),
    ):
        response = await client.post("/v1/models", json=body, headers=headers)
        assert_problem(response, 401)


async def test_405_lists_every_method_of_the_path(
    client: httpx.AsyncClient, editor: dict[str, str]
) -> None:
    response = await client.put(
        "/v1/models/0f8fad5b-d9cb-469f-a165-70867728950e", json={}, headers=editor
    )
    assert response.status_code == 405
    assert set(response.headers["allow"].split(", ")) == {"GET", "HEAD", "PATCH", "DELETE"}


async def test_bodies_over_the_limit_are_413_unread(
    client: httpx.AsyncClient, editor: dict[str, str]
) -> None:
    big = {"name": "m", "learning_type": "supervised", "description": "x" * (2 * 1024 * 1024)}
    assert_problem(await client.post("/v1/models", json=big, headers=editor), 413)


async def test_property_values_must_match_their_type(
    client: httpx.AsyncClient, as_role: Callable[..., dict[str, str]]
) -> None:
    body = {"name": "m", "learning_type": "supervised", "properties": {"card": {}}}
    for bad in ({"type": "url", "value": "http://[x"}, {"type": "number", "value": "1"}):
        body["properties"] = {"card": bad}
        response = await client.post("/v1/models", json=body, headers=as_role())
        assert_problem(response, 422, "properties.card")


async def test_openapi_says_what_the_registry_answers(client: httpx.AsyncClient) -> None:
    spec = (await client.get("/openapi.json")).json()
    create = spec["paths"]["/v1/models"]["post"]
    for status in ("400", "413", "422"):
        assert list(create["responses"][status]["content"]) == ["application/problem+json"]
    listing = spec["paths"]["/v1/models"]["get"]
    sort = next(p for p in listing["parameters"] if p["name"] == "sort")
    assert set(sort["schema"]["enum"]) >= {"name", "-name", "created_at", "-created_at"}
    patch = spec["paths"]["/v1/models/{model_id}"]["patch"]
    if_match = next(p for p in patch["parameters"] if p["name"] == "If-Match")
    assert if_match["required"] is True
    typed = spec["components"]["schemas"]["CustomProperty"]["oneOf"]
    assert {v["properties"]["type"]["const"] for v in typed} == {
        "string",
        "number",
        "boolean",
        "date",
        "url",
    }


async def test_evidence_files_of_any_name_and_over_a_mib_download(
    client: httpx.AsyncClient, editor: dict[str, str]
) -> None:
    created = await client.post(
        "/v1/evidence", json={"type": "fria", "title": "FRIA", "owner": "dpo"}, headers=editor
    )
    assert created.status_code == 201, created.text
    item = created.json()
    content = b"%PDF-1.4\n" + b"x" * (2 * 1024 * 1024)  # above the JSON limit, under its own
    name = 'r\u00e9sum\u00e9 "final" \u2192 2026.pdf'
    put = await client.put(
        f"/v1/evidence/{item['id']}/file",
        params={"filename": name},
        content=content,
        headers={**editor, "content-type": "application/pdf"},
    )
    assert put.status_code == 200, put.text
    got = await client.get(f"/v1/evidence/{item['id']}/file", headers=editor)
    assert got.status_code == 200  # was a 500: the name could not go into a header
    assert got.content == content
    disposition = got.headers["content-disposition"]
    assert 'filename="r_sum_ _final_ _ 2026.pdf"' in disposition
    assert "filename*=UTF-8''r%C3%A9sum%C3%A9%20%22final%22%20%E2%86%92%202026.pdf" in disposition


async def test_nul_in_an_imported_inventory_is_a_422(
    client: httpx.AsyncClient, editor: dict[str, str]
) -> None:
    document = {"models": [{"name": "a\u0000b", "learning_type": "supervised"}]}
    response = await client.post(
        "/v1/inventory/import",
        content=json.dumps(document),
        headers={**editor, "content-type": "application/json"},
    )
    assert_problem(response, 422)
    csv = "kind,name,learning_type\nmodel,a\u0000b,supervised\n"
    response = await client.post(
        "/v1/inventory/import", content=csv.encode(), headers={**editor, "content-type": "text/csv"}
    )
    assert_problem(response, 422)
    listed = await client.get("/v1/models", headers=editor)
    assert listed.json()["items"] == []
