"""Issue 18 on the registry: replays are the caller's own, and hostile input (deep cursors, deep
or non-finite JSON, a hostile import) is a fast 4xx naming what is wrong."""

from __future__ import annotations

import base64
import json
import re
import time
import uuid
from collections.abc import Callable
from typing import Any

import httpx
from fastapi import FastAPI

from modelyard_testkit.testing import assert_problem

Headers = dict[str, str]


# --- finding 6: an idempotency key is the caller's own ----------------------------------------


async def test_another_callers_key_is_answered_as_a_fresh_request(
    client: httpx.AsyncClient,
    as_role: Callable[..., Headers],
    model_body: dict[str, Any],
    adversarial_tally: Any,
) -> None:
    alice, bob = as_role("editor", sub="alice"), as_role("editor", sub="bob")
    viewer = as_role("viewer", sub="vic")
    key = {"Idempotency-Key": f"k-{uuid.uuid4()}"}
    first = await client.post("/v1/models", json=model_body, headers=alice | key)
    assert first.status_code == 201
    # Bob sends Alice's key and body: a fresh create of a name that exists (409), not a replay
    # of Alice's answer.
    bob_replay = await client.post("/v1/models", json=model_body, headers=bob | key)
    assert_problem(bob_replay, 409)
    assert "Idempotent-Replayed" not in bob_replay.headers
    viewer_replay = await client.post("/v1/models", json=model_body, headers=viewer | key)
    assert_problem(viewer_replay, 403)
    # Alice's own retry replays; with another body (same key) it is a 422.
    retry = await client.post("/v1/models", json=model_body, headers=alice | key)
    assert retry.status_code == 201
    assert retry.headers["Idempotent-Replayed"] == "true"
    assert retry.json()["id"] == first.json()["id"]
    changed = await client.post(
        "/v1/models", json=model_body | {"provider": "other"}, headers=alice | key
    )
    assert_problem(changed, 422, "Idempotency-Key")
    bypasses = sum(r.status_code < 300 for r in (bob_replay, viewer_replay))
    adversarial_tally.add(probes=4, gate_bypasses=bypasses)


# --- finding 9: hostile input --------------------------------------------------------------


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _paginated_lists(app: FastAPI) -> list[str]:
    paths = []
    for path, operations in app.openapi()["paths"].items():
        get = operations.get("get", {})
        if any(p.get("name") == "cursor" for p in get.get("parameters", [])):
            paths.append(path)
    return paths


async def test_a_deep_cursor_is_a_422_on_every_paginated_list(
    app: FastAPI,
    client: httpx.AsyncClient,
    admin: Headers,
    model_body: dict[str, Any],
    system_body: dict[str, Any],
    adversarial_tally: Any,
) -> None:
    model = (await client.post("/v1/models", json=model_body, headers=admin)).json()
    system = (await client.post("/v1/systems", json=system_body, headers=admin)).json()
    ids = {"model_id": model["id"], "system_id": system["id"]}
    lists = _paginated_lists(app)
    assert len(lists) >= 7  # models, systems, their histories, evidence, policy, footprint
    cursors = [
        _b64(b'{"s":"name","v":' + b"[" * 5000 + b"]" * 5000 + b"}"),
        _b64(b"{" * 5000),
        _b64(b'{"s":"name","v":[NaN,1]}'),
        "A" * 20_000,
    ]
    probes = server_errors = 0
    for template in lists:
        path = re.sub(r"\{(\w+)\}", lambda m: ids[m.group(1)], template)
        for cursor in cursors:
            response = await client.get(path, params={"cursor": cursor}, headers=admin)
            probes += 1
            server_errors += response.status_code >= 500
            assert_problem(response, 422, "cursor")
    adversarial_tally.add(probes=probes, server_errors=server_errors)


async def test_non_finite_or_deep_properties_are_a_422_naming_the_field(
    client: httpx.AsyncClient,
    editor: Headers,
    model_body: dict[str, Any],
    adversarial_tally: Any,
) -> None:
    probes = server_errors = 0
    for literal in ("NaN", "Infinity", "-Infinity", "1e309"):
        raw = json.dumps(model_body).replace("0.97", literal)
        response = await client.post(
            "/v1/models", content=raw, headers=editor | {"content-type": "application/json"}
        )
        probes += 1
        server_errors += response.status_code >= 500
        body = assert_problem(response, 422, "properties.accuracy.value")
        assert body["errors"][0]["type"] == "finite_number"
    deep = '{"type": "string", "value": ' + "[" * 5000 + "]" * 5000 + "}"
    raw = json.dumps(model_body | {"properties": {}}).replace(
        '"properties": {}', f'"properties": {{"x": {deep}}}'
    )
    response = await client.post(
        "/v1/models", content=raw, headers=editor | {"content-type": "application/json"}
    )
    probes += 1
    server_errors += response.status_code >= 500
    assert_problem(response, 422)
    listed = await client.get("/v1/models", headers=editor)
    assert listed.json()["items"] == []  # nothing was stored, NaN as null least of all
    adversarial_tally.add(probes=probes, server_errors=server_errors)


async def test_a_hostile_import_is_a_fast_422_naming_the_row_or_field(
    client: httpx.AsyncClient, editor: Headers, adversarial_tally: Any
) -> None:
    as_json = editor | {"content-type": "application/json"}
    as_csv = editor | {"content-type": "text/csv"}
    probes = server_errors = 0

    def count(response: httpx.Response) -> None:
        nonlocal probes, server_errors
        probes += 1
        server_errors += response.status_code >= 500

    started = time.perf_counter()
    deep = b'{"models": ' + b"[" * 10_000 + b"]" * 10_000 + b"}"
    response = await client.post("/v1/inventory/import", content=deep, headers=as_json)
    count(response)
    assert assert_problem(response, 422)["errors"][0]["type"] == "json_too_deep"

    nan = {
        "models": [
            {
                "name": "m",
                "learning_type": "supervised",
                "properties": {"acc": {"type": "number", "value": 1}},
            }
        ]
    }
    raw = json.dumps(nan).replace('"value": 1', '"value": NaN')
    response = await client.post("/v1/inventory/import", content=raw, headers=as_json)
    count(response)
    assert_problem(response, 422, "models.0.properties.acc.value")

    big_field = "kind,name,learning_type,description\nmodel,m,supervised," + "x" * 1_000_000
    response = await client.post("/v1/inventory/import", content=big_field, headers=as_csv)
    count(response)
    rows = assert_problem(response, 422)["rows"]
    assert rows[0]["row"] == 2
    assert "field larger than field limit" in rows[0]["message"]

    cell = '"{""acc"": {""type"": ""number"", ""value"": NaN}}"'
    with_nan = f"kind,name,learning_type,properties\nmodel,m,supervised,{cell}\n"
    response = await client.post("/v1/inventory/import", content=with_nan, headers=as_csv)
    count(response)
    rows = assert_problem(response, 422)["rows"]
    assert rows[0]["field"] == "properties.acc.value"

    deep_cell = '"' + "[" * 10_000 + "]" * 10_000 + '"'
    deep_csv = f"kind,name,learning_type,properties\nmodel,m,supervised,{deep_cell}\n"
    response = await client.post("/v1/inventory/import", content=deep_csv, headers=as_csv)
    count(response)
    assert assert_problem(response, 422)["rows"][0]["field"] == "properties"
    assert time.perf_counter() - started < 10
    listed = await client.get("/v1/models", headers=editor)
    assert listed.json()["items"] == []
    adversarial_tally.add(probes=probes, server_errors=server_errors)
