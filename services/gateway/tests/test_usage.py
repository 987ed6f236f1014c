"""Usage per registry model per day: counted by the gateway, written and announced per flush.

Real gateway replicas over HTTP in front of fake OpenAI backends, the real database and the real
broker: the counts land in `gateway.model_usage` and in `gateway.usage.recorded` events, exactly.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import httpx
import pytest
from gateway_testkit import STREAM_PROMPT_TOKENS, Admin, FakeBackend, GatewayServer
from sqlalchemy import func, select, text
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker, create_async_engine

from modelyard_common.contracts import GATEWAY_USAGE_RECORDED
from modelyard_gateway.db import ModelUsage
from modelyard_gateway.routing.catalog import GroupRoute
from modelyard_gateway.settings import GatewaySettings
from modelyard_gateway.usage.service import StreamUsage, UsageRecorder
from modelyard_testkit.testing import EventCapture

COUNTERS = ("requests", "errors", "prompt_tokens", "completion_tokens", "total_tokens")
FLUSH_S = 0.3


@pytest.fixture(scope="module")
def counting_gateway(make_settings: Callable[..., GatewaySettings]) -> Iterator[GatewayServer]:
    """A replica that flushes its usage every 0.3 s (the default is 5 s)."""
    server = GatewayServer(make_settings(usage_flush_s=FLUSH_S, outbox_poll_interval_s=0.2))
    server.start()
    yield server
    server.stop()


@pytest.fixture
async def engine(database_url: str) -> AsyncIterator[AsyncEngine]:
    eng = create_async_engine(database_url)
    yield eng
    await eng.dispose()


@pytest.fixture
async def usage_events(
    make_settings: Callable[..., GatewaySettings],
) -> AsyncIterator[EventCapture]:
    async with EventCapture(make_settings().amqp_url, GATEWAY_USAGE_RECORDED) as capture:
        yield capture


async def stored(engine: AsyncEngine, workspace: str, model_id: str) -> dict[str, int]:
    """Return the model's counts summed over its days in `gateway.model_usage`."""
    async with engine.connect() as conn:
        row = (
            await conn.execute(
                select(*(func.coalesce(func.sum(getattr(ModelUsage, c)), 0) for c in COUNTERS))
                .where(ModelUsage.workspace == workspace)
                .where(ModelUsage.model_id == uuid.UUID(model_id))
            )
        ).one()
    return dict(zip(COUNTERS, (int(v) for v in row), strict=True))


def announced(capture: EventCapture, workspace: str, model_id: str) -> dict[str, int]:
    """Return the deltas of the captured events about the model, summed once per event id.

    Delivery is at least once: a replica stopped between publishing an outbox row and marking it
    leaves it to another relay, which publishes the same event (same id) again; consumers, like
    the registry's, add each id once, and so does this sum.
    """
    total = dict.fromkeys(COUNTERS, 0)
    seen: set[str] = set()
    for event in capture.of(type=GATEWAY_USAGE_RECORDED):
        if event["id"] in seen:
            continue
        seen.add(event["id"])
        data = event["data"]
        if data["workspace"] == workspace and data["model_id"] == model_id:
            for name in COUNTERS:
                total[name] += data["deltas"][name]
    return total


async def settle(check: Callable[[], Any], expected: Any, *, within: float = 15.0) -> Any:
    """Wait until `await check()` (or `check()`) equals `expected`; return the last value."""
    deadline = time.monotonic() + within
    while True:
        value = check()
        if asyncio.iscoroutine(value):
            value = await value
        if value == expected or time.monotonic() > deadline:
            return value
        await asyncio.sleep(0.1)


def openai_client(server: GatewayServer, key: str) -> httpx.AsyncClient:
    return httpx.AsyncClient(
        base_url=server.url, headers={"Authorization": f"Bearer {key}"}, timeout=10
    )


async def test_requests_errors_and_tokens_of_a_bound_group_are_stored_and_announced(
    counting_gateway: GatewayServer,
    backends: Callable[[str], FakeBackend],
    engine: AsyncEngine,
    usage_events: EventCapture,
) -> None:
    admin = Admin(counting_gateway)
    backend = backends("usage-a")
    model_id = str(uuid.uuid4())
    try:
        inst = await admin.instance(backend)
        await admin.group("bound", [inst], registry_model_id=model_id)
        await admin.group("unbound", [inst])
        key = await admin.key()
        chat = {"model": "bound", "messages": [{"role": "user", "content": "hi"}]}
        async with openai_client(counting_gateway, key) as client:
            for _ in range(4):  # usage 1 + 2 = 3 each
                assert (await client.post("/v1/chat/completions", json=chat)).status_code == 200
            embed = {"model": "bound", "input": "some text"}  # usage 1, total 1
            assert (await client.post("/v1/embeddings", json=embed)).status_code == 200
            other = {**chat, "model": "unbound"}  # follows no model: not counted anywhere
            assert (await client.post("/v1/chat/completions", json=other)).status_code == 200
            backend.behaviour.mode = "400"  # the request's own fault: passed on, an error
            assert (await client.post("/v1/chat/completions", json=chat)).status_code == 400
            backend.behaviour.mode = "500"  # the only instance fails: 503, an error
            assert (await client.post("/v1/chat/completions", json=chat)).status_code == 503

        expected = {
            "requests": 7,
            "errors": 2,
            "prompt_tokens": 4 * 1 + 1,
            "completion_tokens": 4 * 2,
            "total_tokens": 4 * 3 + 1,
        }
        ws = admin.workspace
        assert await settle(lambda: stored(engine, ws, model_id), expected) == expected
        assert await settle(lambda: announced(usage_events, ws, model_id), expected) == expected
        # A few more flush intervals: nothing is counted or announced twice.
        await asyncio.sleep(4 * FLUSH_S)
        assert await stored(engine, ws, model_id) == expected
        assert announced(usage_events, ws, model_id) == expected
        mine = [e for e in usage_events.events if e["data"]["workspace"] == ws]
        assert {e["data"]["model_id"] for e in mine} == {model_id}
        replica = counting_gateway.runtime.replica_id
        for event in mine:
            data = event["data"]
            assert event["subject"] == model_id
            assert data["gateway_replica"] == replica
            assert data["interval_start"] < data["interval_end"]
            assert data["day"] == data["interval_end"][:10]  # the UTC day it was counted on
    finally:
        await admin.close()


async def test_streams_count_the_usage_chunk_and_a_failed_stream_as_an_error(
    counting_gateway: GatewayServer,
    backends: Callable[[str], FakeBackend],
    engine: AsyncEngine,
    usage_events: EventCapture,
) -> None:
    admin = Admin(counting_gateway)
    backend = backends("usage-stream")
    model_id = str(uuid.uuid4())
    try:
        inst = await admin.instance(backend)
        await admin.group("streamed", [inst], registry_model_id=model_id)
        key = await admin.key()
        chat = {"model": "streamed", "messages": [{"role": "user", "content": "hi"}]}
        with_usage = {**chat, "stream": True, "stream_options": {"include_usage": True}}
        backend.behaviour.stream_chunks = 5
        async with openai_client(counting_gateway, key) as client:
            for body in (with_usage, with_usage, {**chat, "stream": True}):
                response = await client.post("/v1/chat/completions", json=body)
                assert response.status_code == 200
                assert response.text.endswith("data: [DONE]\n\n")
            relayed = [
                json.loads(line[6:])
                for line in response.text.splitlines()
                if line.startswith("data: {")
            ]
            assert all("usage" not in chunk for chunk in relayed)  # the last one asked for none
            completion = {"model": "streamed", "prompt": "Once", "stream": True}
            completion["stream_options"] = {"include_usage": True}
            response = await client.post("/v1/completions", json=completion)
            assert response.status_code == 200
            backend.behaviour.mode = "drop"  # cut after the first chunk: an SSE error event
            response = await client.post("/v1/chat/completions", json=with_usage)
            assert "stream_interrupted" in response.text

        per_stream = {"prompt": STREAM_PROMPT_TOKENS, "completion": 5}
        expected = {
            "requests": 5,
            "errors": 1,
            "prompt_tokens": 3 * per_stream["prompt"],
            "completion_tokens": 3 * per_stream["completion"],
            "total_tokens": 3 * (per_stream["prompt"] + per_stream["completion"]),
        }
        ws = admin.workspace
        assert await settle(lambda: stored(engine, ws, model_id), expected) == expected
        assert await settle(lambda: announced(usage_events, ws, model_id), expected) == expected
    finally:
        await admin.close()


async def test_a_graceful_stop_flushes_what_was_counted(
    make_settings: Callable[..., GatewaySettings],
    backends: Callable[[str], FakeBackend],
    engine: AsyncEngine,
    usage_events: EventCapture,
) -> None:
    # The timer would flush only after 10 minutes: what lands comes from the stop.
    server = GatewayServer(make_settings(usage_flush_s=600)).start()
    admin = Admin(server)
    model_id = str(uuid.uuid4())
    try:
        inst = await admin.instance(backends("usage-stop"))
        await admin.group("bound", [inst], registry_model_id=model_id)
        key = await admin.key()
        async with openai_client(server, key) as client:
            for _ in range(3):
                body = {"model": "bound", "messages": [{"role": "user", "content": "hi"}]}
                assert (await client.post("/v1/chat/completions", json=body)).status_code == 200
        await asyncio.sleep(0.5)
        assert (await stored(engine, admin.workspace, model_id))["requests"] == 0
    finally:
        await admin.close()
        await asyncio.to_thread(server.stop)
    expected = {"requests": 3, "errors": 0, "prompt_tokens": 3, "completion_tokens": 6}
    expected["total_tokens"] = 9
    assert await stored(engine, admin.workspace, model_id) == expected
    # Its event went out before the replica closed (or waits in the outbox for another relay).
    async with engine.connect() as conn:
        rows = await conn.execute(
            text(
                "SELECT payload, published_at FROM gateway.outbox"
                " WHERE routing_key = :t AND payload->'data'->>'model_id' = :m"
            ),
            {"t": GATEWAY_USAGE_RECORDED, "m": model_id},
        )
        outbox = rows.all()
    assert [row.payload["data"]["deltas"] for row in outbox] == [expected]
    if outbox[0].published_at is not None:
        assert announced(usage_events, admin.workspace, model_id) == expected
    # Whatever went out (once, or again by another relay) is that one outbox row's event.
    sent = {
        event["id"]
        for event in usage_events.of(type=GATEWAY_USAGE_RECORDED)
        if event["data"]["model_id"] == model_id
    }
    assert sent <= {outbox[0].payload["id"]}


async def test_a_failed_flush_keeps_its_counts_for_the_next(database_url: str) -> None:
    unreachable = create_async_engine(
        "postgresql+asyncpg://postgres@127.0.0.1:1/nothing", connect_args={"timeout": 2}
    )
    reachable = create_async_engine(database_url)
    recorder = UsageRecorder(async_sessionmaker(unreachable), flush_s=60, replica="test")
    model_id = uuid.uuid4()
    workspace = f"ws-{uuid.uuid4().hex[:10]}"
    group = GroupRoute(uuid.uuid4(), workspace, "g", 0, (), registry_model_id=model_id)
    try:
        recorder.record(group, error=False, usage={"prompt_tokens": 2, "completion_tokens": 3})
        with pytest.raises(ConnectionRefusedError):
            await recorder.flush()
        assert recorder.pending == 1
        recorder.record(group, error=True)
        recorder.sessionmaker = async_sessionmaker(reachable)
        assert await recorder.flush() == 1
        assert recorder.pending == 0
        assert await stored(reachable, workspace, str(model_id)) == {
            "requests": 2,
            "errors": 1,
            "prompt_tokens": 2,
            "completion_tokens": 3,
            "total_tokens": 5,  # no total reported: prompt + completion
        }
    finally:
        await unreachable.dispose()
        await reachable.dispose()


def test_stream_usage_is_the_last_complete_chunk_that_carries_it() -> None:
    tap = StreamUsage()
    tap.feed(b'data: {"choices": [{"delta": {}}], "usage": null}\n\n')
    tap.feed(b'data: {"choices": [], "usage": {"prompt_tokens": 7, "completion_tokens": 1}}\n\n')
    tap.feed(b"data: [DONE]\n\n")
    assert tap.usage() == {"prompt_tokens": 7, "completion_tokens": 1}
    cut = StreamUsage()
    cut.feed(b'data: {"usage": {"prompt_tokens": 1}}\n\ndata: {"usage": {"prompt_to')
    assert cut.usage() == {"prompt_tokens": 1}  # the cut one is skipped, the whole one read
    none = StreamUsage()
    none.feed(b'data: {"choices": []}\n\n')
    assert none.usage() is None
