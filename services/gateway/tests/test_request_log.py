"""The request log: one record per client request, written off the hot path, kept for retention.

Real gateway replicas over HTTP in front of fake OpenAI backends and the real database: every
count below is read back from `gateway.request_log` or through the admin API.
"""

from __future__ import annotations

import asyncio
import csv
import io
import json
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import aiohttp
import httpx
import pytest
from gateway_testkit import Admin, FakeBackend, GatewayServer, free_port
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from modelyard_gateway.requestlog import retention
from modelyard_gateway.requestlog.record import RequestRecord
from modelyard_gateway.requestlog.writer import RequestLog
from modelyard_gateway.settings import GatewaySettings

FLUSH_S = 0.2


@pytest.fixture(scope="module")
def logging_gateway(make_settings: Callable[..., GatewaySettings]) -> Iterator[GatewayServer]:
    """A replica that writes its request log every 0.2 s (the default is 1 s)."""
    server = GatewayServer(make_settings(request_log_flush_s=FLUSH_S, consume_events=False))
    server.start()
    yield server
    server.stop()


@pytest.fixture
async def engine(database_url: str) -> AsyncIterator[AsyncEngine]:
    eng = create_async_engine(database_url)
    yield eng
    await eng.dispose()


@pytest.fixture
async def logged_admin(logging_gateway: GatewayServer) -> AsyncIterator[Admin]:
    user = Admin(logging_gateway)
    yield user
    await user.close()


async def count(engine: AsyncEngine, workspace: str, where: str = "true", **values: Any) -> int:
    async with engine.connect() as conn:
        found = await conn.scalar(
            text(f"SELECT count(*) FROM gateway.request_log WHERE workspace = :ws AND {where}"),
            {"ws": workspace, **values},
        )
    return int(found or 0)


async def settled_count(engine: AsyncEngine, workspace: str, expected: int) -> int:
    """Wait until the workspace has `expected` records (or 15 s went by); return the count."""
    deadline = time.monotonic() + 15
    while True:
        found = await count(engine, workspace)
        if found >= expected or time.monotonic() > deadline:
            # A few more flushes: nothing arrives twice or late.
            await asyncio.sleep(3 * FLUSH_S)
            return await count(engine, workspace)
        await asyncio.sleep(0.1)


async def rows(engine: AsyncEngine, workspace: str) -> list[dict[str, Any]]:
    async with engine.connect() as conn:
        result = await conn.execute(
            text("SELECT * FROM gateway.request_log WHERE workspace = :ws ORDER BY at, id"),
            {"ws": workspace},
        )
        return [dict(r._mapping) for r in result]


def openai_http(server: GatewayServer, key: str) -> httpx.AsyncClient:
    return httpx.AsyncClient(
        base_url=server.url, headers={"Authorization": f"Bearer {key}"}, timeout=10
    )


CHAT = {"messages": [{"role": "user", "content": "hi"}]}


async def test_ten_thousand_concurrent_requests_leave_exactly_ten_thousand_records(
    logging_gateway: GatewayServer,
    logged_admin: Admin,
    backends: Callable[[str], FakeBackend],
    engine: AsyncEngine,
) -> None:
    backend = backends("reqlog-load")
    inst = await logged_admin.instance(backend)
    await logged_admin.group("load", [inst])
    key = await logged_admin.key()
    total, concurrency = 10_000, 32
    # Every tenth request names a model that does not exist: 404, recorded all the same.
    statuses: list[int] = []
    started = time.monotonic()
    async with aiohttp.ClientSession(
        logging_gateway.url,
        headers={"Authorization": f"Bearer {key}"},
        connector=aiohttp.TCPConnector(limit=concurrency),
    ) as http:
        queue = iter(range(total))

        async def worker() -> None:
            for i in queue:
                model = "missing" if i % 10 == 0 else "load"
                async with http.post("/v1/chat/completions", json={"model": model, **CHAT}) as r:
                    await r.read()
                    statuses.append(r.status)

        await asyncio.gather(*(worker() for _ in range(concurrency)))
    sent_s = time.monotonic() - started
    assert statuses.count(200) == 9_000
    assert statuses.count(404) == 1_000
    ws = logged_admin.workspace
    assert await settled_count(engine, ws, total) == total
    assert await count(engine, ws, "status = 200 AND group_name = 'load'") == 9_000
    served = await count(engine, ws, "status = 200 AND instances = ARRAY[:i]", i=inst["name"])
    assert served == 9_000
    assert await count(engine, ws, "status = 200 AND total_tokens = 3 AND attempts = 1") == 9_000
    assert (
        await count(
            engine,
            ws,
            "status = 404 AND error_cause = 'model_not_found'"
            " AND group_name = 'missing' AND attempts = 0",
        )
        == 1_000
    )
    assert await count(engine, ws, "request_body IS NOT NULL OR response_body IS NOT NULL") == 0
    total_s = time.monotonic() - started
    print(
        f"\n10,000 requests (c={concurrency}) sent in {sent_s:.1f}s, all logged in {total_s:.1f}s"
    )
    assert logging_gateway.app.state.proxy_endpoints.requests.dropped == 0


async def test_stream_failover_exhausted_and_unknown_model_are_recorded(
    logging_gateway: GatewayServer,
    logged_admin: Admin,
    backends: Callable[[str], FakeBackend],
    engine: AsyncEngine,
) -> None:
    broken, good = backends("reqlog-broken"), backends("reqlog-good")
    broken.behaviour.mode = "500"
    first = await logged_admin.instance(broken, name="broken")
    second = await logged_admin.instance(good, name="good")
    await logged_admin.group("failover", [first, second])
    await logged_admin.group("streamed", [second])
    await logged_admin.group("doomed", [first])
    key = await logged_admin.key()
    async with openai_http(logging_gateway, key) as client:
        streamed = {
            "model": "streamed",
            "stream": True,
            "stream_options": {"include_usage": True},
            **CHAT,
        }
        response = await client.post("/v1/chat/completions", json=streamed)
        assert response.status_code == 200
        assert response.text.endswith("data: [DONE]\n\n")
        response = await client.post("/v1/chat/completions", json={"model": "failover", **CHAT})
        assert response.status_code == 200
        assert response.headers["x-modelyard-attempts"] == "2"
        response = await client.post("/v1/embeddings", json={"model": "doomed", "input": "x"})
        assert response.status_code == 503
        response = await client.post("/v1/completions", json={"model": "nope", "prompt": "x"})
        assert response.status_code == 404
        good.behaviour.mode = "400"  # the request's own fault, passed on as is
        response = await client.post("/v1/chat/completions", json={"model": "streamed", **CHAT})
        assert response.status_code == 400
        response = await client.post("/v1/chat/completions", content=b"{not json")
        assert response.status_code == 400
        good.behaviour.mode = "drop"  # cut after the first chunk
        response = await client.post("/v1/chat/completions", json=streamed)
        assert "stream_interrupted" in response.text

    ws = logged_admin.workspace
    assert await settled_count(engine, ws, 7) == 7
    stream, failover, exhausted, missing, refused, garbled, cut = await rows(engine, ws)

    assert stream["endpoint"] == "chat/completions"
    assert stream["stream"] is True
    assert (stream["status"], stream["error_cause"], stream["instances"]) == (200, None, ["good"])
    assert (stream["prompt_tokens"], stream["completion_tokens"], stream["total_tokens"]) == (
        4,
        3,
        7,
    )
    assert stream["ttfb_ms"] is not None
    assert stream["ttfb_ms"] <= stream["duration_ms"]

    assert failover["instances"] == ["broken", "good"]
    assert failover["attempts"] == 2
    assert (failover["status"], failover["error_cause"], failover["total_tokens"]) == (200, None, 3)
    assert failover["stream"] is False
    assert failover["group_name"] == "failover"

    assert exhausted["endpoint"] == "embeddings"
    assert (exhausted["status"], exhausted["error_cause"]) == (503, "http_5xx")
    assert exhausted["instances"] == ["broken"]
    assert exhausted["attempts"] == 1

    assert (missing["status"], missing["error_cause"], missing["group_name"]) == (
        404,
        "model_not_found",
        "nope",
    )
    assert missing["instances"] == []
    assert missing["attempts"] == 0
    assert (refused["status"], refused["error_cause"], refused["instances"]) == (
        400,
        "http_4xx",
        ["good"],
    )
    assert (garbled["status"], garbled["error_cause"], garbled["group_name"]) == (
        400,
        "invalid_json",
        None,
    )
    assert (cut["status"], cut["error_cause"], cut["stream"]) == (200, "stream_interrupted", True)
    key_ids = {r["key_id"] for r in (stream, failover, exhausted, missing, refused, garbled, cut)}
    assert len(key_ids) == 1
    replica = logging_gateway.runtime.replica_id
    assert {r["replica"] for r in await rows(engine, ws)} == {replica}
    assert all(r["request_body"] is None for r in await rows(engine, ws))


async def test_a_client_leaving_a_stream_is_recorded_as_client_closed(
    logging_gateway: GatewayServer,
    logged_admin: Admin,
    backends: Callable[[str], FakeBackend],
    engine: AsyncEngine,
) -> None:
    slow = backends("reqlog-slow")
    slow.behaviour.stream_chunks = 50
    slow.behaviour.chunk_delay_s = 0.1
    await logged_admin.group("slow", [await logged_admin.instance(slow)])
    key = await logged_admin.key()
    async with openai_http(logging_gateway, key) as client:
        body = {"model": "slow", "stream": True, **CHAT}
        async with client.stream("POST", "/v1/chat/completions", json=body) as response:
            async for _ in response.aiter_bytes():
                break  # gone after the first bytes
    ws = logged_admin.workspace
    assert await settled_count(engine, ws, 1) == 1
    [left] = await rows(engine, ws)
    assert (left["status"], left["error_cause"], left["stream"]) == (200, "client_closed", True)
    assert left["duration_ms"] < 4000  # not the 5 s the whole stream would have taken


async def test_bodies_are_kept_only_for_groups_that_log_them(
    logging_gateway: GatewayServer,
    logged_admin: Admin,
    backends: Callable[[str], FakeBackend],
    engine: AsyncEngine,
) -> None:
    backend = backends("reqlog-bodies")
    inst = await logged_admin.instance(backend)
    quiet = await logged_admin.group("quiet", [inst])
    assert quiet["log_bodies"] is False
    loud = await logged_admin.group("loud", [inst], log_bodies=True)
    assert loud["log_bodies"] is True
    key = await logged_admin.key()
    big = "x" * (100 * 1024)
    async with openai_http(logging_gateway, key) as client:
        for model in ("quiet", "loud"):
            chat = {"model": model, "messages": [{"role": "user", "content": "secret prompt"}]}
            assert (await client.post("/v1/chat/completions", json=chat)).status_code == 200
        streamed = {"model": "loud", "stream": True, **CHAT}
        assert (await client.post("/v1/chat/completions", json=streamed)).status_code == 200
        huge = {"model": "loud", "messages": [{"role": "user", "content": big}]}
        assert (await client.post("/v1/chat/completions", json=huge)).status_code == 200
        # Switched off again: no more bodies.
        etag = (await logged_admin.http.get(f"/v1/groups/{loud['id']}")).headers["ETag"]
        changed = await logged_admin.patch(
            f"/v1/groups/{loud['id']}", {"log_bodies": False}, headers={"If-Match": etag}
        )
        assert changed.status_code == 200
        assert changed.json()["log_bodies"] is False
        chat = {"model": "loud", "messages": [{"role": "user", "content": "secret prompt"}]}
        assert (await client.post("/v1/chat/completions", json=chat)).status_code == 200

    ws = logged_admin.workspace
    assert await settled_count(engine, ws, 5) == 5
    quiet_row, loud_row, stream_row, huge_row, off_row = await rows(engine, ws)
    assert quiet_row["request_body"] is None
    assert quiet_row["response_body"] is None
    assert off_row["request_body"] is None
    assert off_row["response_body"] is None
    assert "secret prompt" in loud_row["request_body"]
    assert json.loads(loud_row["response_body"])["choices"][0]["message"]["content"] == (
        "Hello from reqlog-bodies"
    )
    assert stream_row["response_body"].startswith("data: ")
    assert stream_row["response_body"].endswith("data: [DONE]\n\n")
    assert len(huge_row["request_body"].encode()) == 64 * 1024  # capped
    assert huge_row["status"] == 200


async def _insert_at(engine: AsyncEngine, workspace: str, moments: list[datetime]) -> None:
    """Insert one record per moment directly (their partitions made first)."""
    await retention.ensure_partitions(engine, days=[m.date() for m in moments])
    async with engine.begin() as conn:
        for moment in moments:
            await conn.execute(
                text(
                    "INSERT INTO gateway.request_log (id, at, workspace, key_id, endpoint,"
                    " status, duration_ms, replica) VALUES (:id, :at, :ws, :key, 'embeddings',"
                    " 200, 1, 'test')"
                ),
                {"id": uuid.uuid4(), "at": moment, "ws": workspace, "key": uuid.uuid4()},
            )


async def test_purge_leaves_only_the_rows_inside_retention(engine: AsyncEngine) -> None:
    workspace = f"ws-{uuid.uuid4().hex[:10]}"
    now = datetime.now(UTC)
    cutoff = now - timedelta(days=180)
    too_old = [now - timedelta(days=d) for d in (400, 250, 181)] + [
        cutoff - timedelta(minutes=5),  # the day straddling the cutoff: trimmed, not dropped
        cutoff - timedelta(seconds=1),
    ]
    kept = [cutoff + timedelta(minutes=5), now - timedelta(days=90), now - timedelta(hours=1)]
    await _insert_at(engine, workspace, too_old + kept)
    assert await count(engine, workspace) == 8
    old_days = {m.date() for m in too_old if m.date() < cutoff.date()}
    assert old_days <= set(await retention.partition_days(engine))

    purged = await retention.purge(engine, retention_days=180, now=now)

    assert await count(engine, workspace) == 3
    assert await count(engine, workspace, "at >= :cutoff", cutoff=cutoff) == 3
    days = set(await retention.partition_days(engine))
    assert not old_days & days  # whole days dropped, not emptied
    assert purged.partitions >= len(old_days)
    assert purged.rows >= 2
    assert {now.date() + timedelta(days=n) for n in range(3)} <= days  # made ahead
    again = await retention.purge(engine, retention_days=180, now=now)  # idempotent
    assert (again.partitions, again.rows) == (0, 0)
    assert await count(engine, workspace) == 3


async def test_listing_filters_and_cursor_pages(
    logging_gateway: GatewayServer,
    logged_admin: Admin,
    backends: Callable[[str], FakeBackend],
    engine: AsyncEngine,
) -> None:
    backend = backends("reqlog-list")
    inst = await logged_admin.instance(backend)
    await logged_admin.group("alpha", [inst])
    await logged_admin.group("beta", [inst])
    first_key, second_key = await logged_admin.key(), await logged_admin.key()
    async with openai_http(logging_gateway, first_key) as client:
        for _ in range(7):
            await client.post("/v1/chat/completions", json={"model": "alpha", **CHAT})
        for _ in range(3):
            await client.post("/v1/chat/completions", json={"model": "ghost", **CHAT})
    async with openai_http(logging_gateway, second_key) as client:
        for _ in range(4):
            await client.post("/v1/embeddings", json={"model": "beta", "input": "x"})
    ws = logged_admin.workspace
    assert await settled_count(engine, ws, 14) == 14
    http = logged_admin.http

    async def listed(**params: Any) -> list[dict[str, Any]]:
        response = await http.get("/v1/requests", params=params)
        assert response.status_code == 200, response.text
        items: list[dict[str, Any]] = response.json()["items"]
        return items

    everything = await listed(limit=200)
    assert len(everything) == 14
    ats = [item["at"] for item in everything]
    assert ats == sorted(ats, reverse=True)  # newest first
    assert len(await listed(group="alpha")) == 7
    assert len(await listed(group="ghost", status=404)) == 3
    assert len(await listed(status_class="4xx")) == 3
    assert len(await listed(status_class="2xx")) == 11
    assert len(await listed(error_cause="model_not_found")) == 3
    second_id = everything[0]["key_id"]
    assert {i["key_id"] for i in await listed(key_id=second_id)} == {second_id}
    assert len(await listed(key_id=second_id)) == 4
    moments = [datetime.fromisoformat(item["at"]) for item in everything]
    middle = moments[7]
    assert len(await listed(until=middle.isoformat())) == sum(1 for m in moments if m < middle)
    assert len(await listed(since=middle.isoformat())) == sum(1 for m in moments if m >= middle)
    assert await listed(registry_model_id=str(uuid.uuid4())) == []

    # Pages of 5: 5 + 5 + 4, no repeats, same order as one page.
    seen: list[str] = []
    cursor = None
    pages = 0
    while True:
        params: dict[str, Any] = {"limit": 5}
        if cursor:
            params["cursor"] = cursor
        body = (await http.get("/v1/requests", params=params)).json()
        seen += [item["id"] for item in body["items"]]
        pages += 1
        cursor = body["next_cursor"]
        if cursor is None:
            break
    assert pages == 3
    assert seen == [item["id"] for item in everything]
    oldest_first = await listed(sort="at", limit=200)
    assert [i["id"] for i in oldest_first] == seen[::-1]

    crafted = await http.get("/v1/requests", params={"cursor": "eyJzIjoiLWF0IiwidiI6WzEsMl19"})
    assert crafted.status_code == 422
    assert crafted.headers["content-type"].startswith("application/problem+json")
    assert (await http.get("/v1/requests", params={"status_class": "6xx"})).status_code == 422
    assert (await http.get("/v1/requests", params={"since": "yesterday"})).status_code == 422


async def test_export_streams_csv_and_jsonl_with_the_same_filters(
    logging_gateway: GatewayServer,
    logged_admin: Admin,
    backends: Callable[[str], FakeBackend],
    engine: AsyncEngine,
) -> None:
    backend = backends("reqlog-export")
    inst = await logged_admin.instance(backend)
    await logged_admin.group("export", [inst])
    key = await logged_admin.key()
    async with openai_http(logging_gateway, key) as client:
        await asyncio.gather(
            *(
                client.post("/v1/chat/completions", json={"model": "export", **CHAT})
                for _ in range(25)
            )
        )
        for _ in range(5):
            await client.post("/v1/chat/completions", json={"model": "absent", **CHAT})
    ws = logged_admin.workspace
    assert await settled_count(engine, ws, 30) == 30
    http = logged_admin.http

    response = await http.get("/v1/requests/export", params={"format": "csv"})
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/csv")
    table = list(csv.DictReader(io.StringIO(response.text)))
    assert len(table) == 30
    assert sum(1 for r in table if r["status"] == "404") == 5
    assert {r["group"] for r in table} == {"export", "absent"}

    response = await http.get("/v1/requests/export", params={"format": "jsonl", "status": 200})
    assert response.headers["content-type"].startswith("application/x-ndjson")
    lines = [json.loads(line) for line in response.text.splitlines()]
    assert len(lines) == 25
    assert {line["instances"][0] for line in lines} == {inst["name"]}
    response = await http.get(
        "/v1/requests/export", params={"format": "csv", "error_cause": "model_not_found"}
    )
    assert len(list(csv.DictReader(io.StringIO(response.text)))) == 5
    assert (await http.get("/v1/requests/export", params={"format": "xml"})).status_code == 422


async def test_another_workspace_sees_nothing(
    logging_gateway: GatewayServer,
    logged_admin: Admin,
    backends: Callable[[str], FakeBackend],
    engine: AsyncEngine,
) -> None:
    backend = backends("reqlog-private")
    inst = await logged_admin.instance(backend)
    await logged_admin.group("private", [inst])
    key = await logged_admin.key()
    async with openai_http(logging_gateway, key) as client:
        for _ in range(3):
            await client.post("/v1/chat/completions", json={"model": "private", **CHAT})
    assert await settled_count(engine, logged_admin.workspace, 3) == 3
    viewer = Admin(logging_gateway, workspace=logged_admin.workspace, role="viewer")
    stranger = Admin(logging_gateway, role="viewer")
    try:
        assert len((await viewer.http.get("/v1/requests")).json()["items"]) == 3
        assert (await stranger.http.get("/v1/requests")).json()["items"] == []
        assert (await stranger.http.get("/v1/requests", params={"group": "private"})).json()[
            "items"
        ] == []
        export = await stranger.http.get("/v1/requests/export", params={"format": "jsonl"})
        assert export.status_code == 200
        assert export.text == ""
        anonymous = await httpx.AsyncClient(base_url=logging_gateway.url).get("/v1/requests")
        assert anonymous.status_code == 401
    finally:
        await viewer.close()
        await stranger.close()


async def test_an_unreachable_database_bounds_the_buffer_and_counts_drops() -> None:
    dead = create_async_engine(f"postgresql+asyncpg://postgres@127.0.0.1:{free_port()}/none")
    log = RequestLog(dead, replica="r", flush_s=0.05, batch=2, buffer=5, body_bytes=0)
    try:
        for _ in range(8):
            log.record(RequestRecord(workspace="w", key_id=uuid.uuid4(), endpoint="embeddings"))
        assert (log.pending, log.dropped) == (5, 3)  # never blocks, never raises
        with pytest.raises(OSError, match="onnect"):
            await log.flush()
        assert (log.pending, log.dropped) == (5, 3)  # the failed batch went back
    finally:
        await dead.dispose()


async def test_a_graceful_stop_writes_what_is_buffered(
    make_settings: Callable[..., GatewaySettings],
    backends: Callable[[str], FakeBackend],
    engine: AsyncEngine,
) -> None:
    # Flushes only every minute: what the replica logged reaches the table at its stop.
    server = GatewayServer(make_settings(request_log_flush_s=60, consume_events=False)).start()
    admin = Admin(server)
    try:
        inst = await admin.instance(backends("reqlog-stop"))
        await admin.group("stopping", [inst])
        key = await admin.key()
        async with openai_http(server, key) as client:
            for _ in range(20):
                await client.post("/v1/embeddings", json={"model": "stopping", "input": "x"})
        await asyncio.sleep(0.3)
        assert await count(engine, admin.workspace) == 0
    finally:
        await admin.close()
        await asyncio.to_thread(server.stop)
    assert await count(engine, admin.workspace) == 20


async def test_openapi_documents_the_request_log(
    logging_gateway: GatewayServer, logged_admin: Admin
) -> None:
    spec = (await logged_admin.http.get("/openapi.json")).json()
    listing = spec["paths"]["/v1/requests"]["get"]
    export = spec["paths"]["/v1/requests/export"]["get"]
    assert listing["operationId"] == "list_requests"
    assert export["operationId"] == "export_requests"
    for operation in (listing, export):
        assert operation["summary"]
        assert {"401", "403", "422"} <= set(operation["responses"])
        names = {p["name"] for p in operation["parameters"]}
        assert {"since", "until", "key_id", "group", "status", "status_class"} <= names
        assert {"error_cause", "registry_model_id"} <= names
    assert {"limit", "cursor", "sort"} <= {p["name"] for p in listing["parameters"]}
    content = export["responses"]["200"]["content"]
    assert set(content) == {"text/csv", "application/x-ndjson"}
    assert all(media["example"] for media in content.values())
    assert spec["components"]["schemas"]["LoggedRequest"]["examples"]
    assert "log_bodies" in spec["components"]["schemas"]["GroupCreate"]["properties"]
    metrics = (await logged_admin.http.get("/metrics")).text
    assert "modelyard_gateway_request_log_dropped_total" in metrics


async def test_a_flush_writes_what_waited_when_it_began_in_full_batches_not_a_trickle(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Records arriving during a write wait for the next one: a busy replica's writer does not
    chase them with an endless run of tiny batches (each a connection checkout)."""
    log = RequestLog(
        create_async_engine("postgresql+asyncpg://nobody@127.0.0.1:1/none"),
        replica="r",
        flush_s=1.0,
        batch=100,
        buffer=10_000,
        body_bytes=0,
    )
    key = uuid.uuid4()

    def one() -> RequestRecord:
        return RequestRecord(workspace="w", key_id=key, endpoint="/v1/chat/completions")

    writes: list[int] = []

    async def write(records: list[RequestRecord]) -> None:
        writes.append(len(records))
        await asyncio.sleep(0)
        for _ in range(30):  # traffic goes on while the batch is written
            log.record(one())

    monkeypatch.setattr(log, "_write", write)
    for _ in range(250):
        log.record(one())
    assert await log.flush() == 250
    assert writes == [100, 100, 50]
    assert log.pending == 90  # what came during the three writes: the next tick's
