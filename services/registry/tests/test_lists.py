"""Lists: cursor pagination that stays correct under concurrent inserts, filters, sort."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import pytest

from modelyard_testkit.testing import assert_problem, create_ok

Headers = dict[str, str]


async def _all_pages(
    client: httpx.AsyncClient,
    url: str,
    query: dict[str, Any],
    headers: Headers,
    *,
    between: Any = None,
) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = []
    cursor = None
    page = 0
    while True:
        params = {**query, "cursor": cursor} if cursor else query
        body = (await client.get(url, params=params, headers=headers)).json()
        items.extend(body["items"])
        cursor = body["next_cursor"]
        page += 1
        if cursor is None:
            return items
        if between is not None:
            await between(page)


async def test_pages_cover_every_row_once_despite_concurrent_inserts(
    client: httpx.AsyncClient, editor: Headers, model_body: dict[str, Any]
) -> None:
    originals = [f"m{i:02d}" for i in range(0, 40, 2)]
    await asyncio.gather(
        *(create_ok(client, "/v1/models", {**model_body, "name": n}, editor) for n in originals)
    )
    inserted: list[str] = []

    async def insert_during_paging(page: int) -> None:
        # Names land before and after the cursor position, while pages are being read.
        names = [f"m{page * 8 - 1:02d}", f"m{page * 8 + 11:02d}", f"a{page}"]
        await asyncio.gather(
            *(create_ok(client, "/v1/models", {**model_body, "name": n}, editor) for n in names)
        )
        inserted.extend(names)

    seen = await _all_pages(
        client, "/v1/models", {"limit": 6, "sort": "name"}, editor, between=insert_during_paging
    )
    names = [m["name"] for m in seen]
    assert len(names) == len(set(names)), "a row appeared twice"
    assert set(originals) <= set(names), "a row that existed throughout was skipped"
    assert names == sorted(names)
    assert len(seen) > 6, "paging never reached a second page"
    assert inserted
    everything = await _all_pages(client, "/v1/models", {"limit": 200}, editor)
    assert len(everything) == len(originals) + len(inserted)


async def test_descending_sort_and_limit(
    client: httpx.AsyncClient, editor: Headers, model_body: dict[str, Any]
) -> None:
    for n in ("alpha", "bravo", "charlie"):
        await create_ok(client, "/v1/models", {**model_body, "name": n}, editor)
    first = (await client.get("/v1/models?sort=-created_at&limit=2", headers=editor)).json()
    assert [m["name"] for m in first["items"]] == ["charlie", "bravo"]
    rest = (
        await client.get(
            "/v1/models",
            params={"sort": "-created_at", "limit": 2, "cursor": first["next_cursor"]},
            headers=editor,
        )
    ).json()
    assert [m["name"] for m in rest["items"]] == ["alpha"]
    assert rest["next_cursor"] is None


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ("limit=0", "limit"),
        ("limit=1000", "limit"),
        ("sort=password", "sort"),
        ("cursor=not-a-cursor", "cursor"),
        ("learning_type=magic", "learning_type"),
        ("archived=maybe", "archived"),
        ("ids=123", "ids.0"),
    ],
)
async def test_bad_list_parameters_are_problems(
    client: httpx.AsyncClient, editor: Headers, query: str, field: str
) -> None:
    assert_problem(await client.get(f"/v1/models?{query}", headers=editor), 422, field)


async def test_cursor_of_another_sort_is_rejected(
    client: httpx.AsyncClient, editor: Headers, model_body: dict[str, Any]
) -> None:
    for n in ("a", "b"):
        await create_ok(client, "/v1/models", {**model_body, "name": n}, editor)
    cursor = (await client.get("/v1/models?limit=1", headers=editor)).json()["next_cursor"]
    response = await client.get(
        "/v1/models", params={"cursor": cursor, "sort": "-name"}, headers=editor
    )
    assert_problem(response, 422, "cursor")


async def test_filters(
    client: httpx.AsyncClient, editor: Headers, model_body: dict[str, Any]
) -> None:
    vision = await create_ok(
        client,
        "/v1/models",
        {
            **model_body,
            "name": "street-sign-reader",
            "description": "Reads traffic signs from dashcam images.",
            "learning_type": "supervised",
            "tags": ["vision"],
        },
        editor,
    )
    clusters = await create_ok(
        client,
        "/v1/models",
        {
            **model_body,
            "name": "customer-segments",
            "description": "Groups customers by behaviour.",
            "learning_type": "unsupervised",
            "tags": ["marketing"],
        },
        editor,
    )
    agent = await create_ok(
        client,
        "/v1/models",
        {
            **model_body,
            "name": "warehouse-robot",
            "description": "Plans picking routes.",
            "learning_type": "reinforcement",
            "tags": ["robotics", "vision"],
        },
        editor,
    )

    async def names(query: str) -> list[str]:
        body = (await client.get(f"/v1/models?{query}", headers=editor)).json()
        return sorted(m["name"] for m in body["items"])

    assert await names("q=traffic") == ["street-sign-reader"]
    assert await names("q=signs") == ["street-sign-reader"]  # stemmed full-text match
    assert await names("q=segments") == ["customer-segments"]
    assert await names("learning_type=unsupervised") == ["customer-segments"]
    assert await names("tag=vision") == ["street-sign-reader", "warehouse-robot"]
    assert await names("tag=marketing&tag=robotics") == ["customer-segments", "warehouse-robot"]
    assert await names(f"ids={vision['id']}&ids={clusters['id']}") == [
        "customer-segments",
        "street-sign-reader",
    ]
    await client.post(f"/v1/models/{agent['id']}/archive", headers=editor)
    assert await names("tag=vision") == ["street-sign-reader"]
    assert await names("archived=true") == ["warehouse-robot"]
    assert await names(f"ids={agent['id']}") == ["warehouse-robot"]


async def test_system_filters(
    client: httpx.AsyncClient, editor: Headers, system_body: dict[str, Any]
) -> None:
    await create_ok(
        client, "/v1/systems", {**system_body, "name": "s-high", "status": "retired"}, editor
    )
    await create_ok(
        client,
        "/v1/systems",
        {**system_body, "name": "s-min", "risk_level": "minimal", "status": "draft"},
        editor,
    )

    async def names(query: str) -> list[str]:
        body = (await client.get(f"/v1/systems?{query}", headers=editor)).json()
        return sorted(s["name"] for s in body["items"])

    assert await names("risk_level=high") == ["s-high"]
    assert await names("status=draft") == ["s-min"]
    assert await names("q=fraud") == ["s-high", "s-min"]
    assert await names("sort=-risk_level") == ["s-high", "s-min"]


async def test_a_listed_row_is_the_same_view_as_its_own_get(
    client: httpx.AsyncClient,
    editor: Headers,
    as_role: Any,
    model_body: dict[str, Any],
    system_body: dict[str, Any],
) -> None:
    # A page is read as columns, one row is read as an ORM instance: both must give one view.
    approver = as_role("approver", sub="bob")
    plain = await create_ok(client, "/v1/models", {**model_body, "name": "same-plain"}, editor)
    changed = await create_ok(client, "/v1/models", {**model_body, "name": "same-changed"}, editor)
    patched = await client.patch(
        f"/v1/models/{changed['id']}",
        json={"tags": ["b", "a"], "properties": {"big": {"type": "number", "value": 10**30}}},
        headers={**editor, "If-Match": changed["etag"]},
    )
    assert patched.status_code == 200, patched.text
    restricted = await create_ok(client, "/v1/models", {**model_body, "name": "same-kept"}, editor)
    path = f"/v1/models/{restricted['id']}/approval"
    assert (
        await client.post(f"{path}/request", json={"comment": "ok?"}, headers=editor)
    ).is_success
    conditions = {"text": "lab only", "device_labels": {"site": ["lab"]}, "gateway_groups": []}
    decision = {"decision": "restricted", "comment": "lab first", "conditions": conditions}
    assert (await client.post(f"{path}/decision", json=decision, headers=approver)).is_success
    archived = await create_ok(client, "/v1/models", {**model_body, "name": "same-gone"}, editor)
    assert (await client.post(f"/v1/models/{archived['id']}/archive", headers=editor)).is_success
    system = await create_ok(client, "/v1/systems", {**system_body, "name": "same-sys"}, editor)

    listed = await _all_pages(client, "/v1/models", {"q": "same", "limit": 2}, editor)
    listed += await _all_pages(client, "/v1/models", {"archived": "true"}, editor)
    listed_systems = await _all_pages(client, "/v1/systems", {"limit": 200}, editor)
    by_id = {item["id"]: item for item in [*listed, *listed_systems]}
    for kind, item in [
        ("models", plain),
        ("models", changed),
        ("models", restricted),
        ("models", archived),
        ("systems", system),
    ]:
        got = await client.get(f"/v1/{kind}/{item['id']}", headers=editor)
        assert by_id[item["id"]] == got.json()
        assert by_id[item["id"]]["etag"] == got.headers["etag"]
    assert by_id[restricted["id"]]["approval_conditions"] == conditions
    assert by_id[restricted["id"]]["approval_comment"] == "lab first"
    assert by_id[archived["id"]]["archived"] is True
    assert by_id[changed["id"]]["properties"]["big"]["value"] == 10**30
