"""Streams: failover before the first byte, an error event after it, cancellation upstream."""

from __future__ import annotations

import uuid
from collections.abc import Callable

import httpx
import openai
import pytest
from gateway_testkit import Admin, FakeBackend, GatewayServer, eventually


def client(gateway: GatewayServer, key: str) -> openai.AsyncOpenAI:
    return openai.AsyncOpenAI(base_url=gateway.url + "/v1", api_key=key, max_retries=0, timeout=10)


@pytest.mark.parametrize("mode", ["drop_before_first", "slow_first_byte", "500"])
async def test_stream_fails_over_before_its_first_byte(
    mode: str, gateway: GatewayServer, admin: Admin, backends: Callable[[str], FakeBackend]
) -> None:
    bad, good = backends("bad"), backends("good")
    if mode == "slow_first_byte":
        bad.behaviour.first_byte_delay_s = 2.0
    else:
        bad.behaviour.mode = mode
    first = await admin.instance(bad, name="bad", read_timeout_s=0.3)
    await admin.group("chat", [first, await admin.instance(good, name="good")])
    c = client(gateway, await admin.key())

    async with c.chat.completions.with_streaming_response.create(
        model="chat", messages=[{"role": "user", "content": "x"}], stream=True
    ) as response:
        assert response.headers["x-modelyard-instance"] == "good"
        assert response.headers["x-modelyard-attempts"] == "2"
        text = "".join(
            [chunk.choices[0].delta.content or "" async for chunk in await response.parse()]
        )
    assert text == "Hello0 Hello1 Hello2 "
    assert len(bad.requests) == 1
    await c.close()


async def test_stream_cut_after_first_byte_ends_with_an_openai_error_event(
    gateway: GatewayServer, admin: Admin, backends: Callable[[str], FakeBackend]
) -> None:
    dropper, spare = backends("dropper"), backends("spare")
    dropper.behaviour.mode = "drop"
    first = await admin.instance(dropper, name="dropper")
    await admin.group("chat", [first, await admin.instance(spare, name="spare")])
    c = client(gateway, await admin.key())

    received: list[str] = []
    stream = await c.chat.completions.create(
        model="chat", messages=[{"role": "user", "content": "x"}], stream=True
    )

    async def consume() -> None:
        async for chunk in stream:
            received.append(chunk.choices[0].delta.content or "")

    with pytest.raises(openai.APIError) as caught:
        await consume()
    assert received == ["Hello0 "]  # what was sent before the cut reached the client
    assert "failed mid-stream" in caught.value.message
    assert spare.requests == []  # no failover once bytes went out

    async with httpx.AsyncClient(base_url=gateway.url) as http:
        key = c.api_key
        response = await http.post(
            "/v1/chat/completions",
            json={"model": "chat", "messages": [], "stream": True},
            headers={"Authorization": f"Bearer {key}"},
        )
    assert response.status_code == 200
    events = [e for e in response.text.split("\n\n") if e]
    assert events[-1].startswith('data: {"error":')
    assert '"code":"stream_interrupted"' in events[-1]
    await c.close()


async def test_client_disconnect_cancels_the_upstream_request(
    gateway: GatewayServer, admin: Admin, backends: Callable[[str], FakeBackend]
) -> None:
    slow = backends("slow")
    slow.behaviour.stream_chunks = 50
    slow.behaviour.chunk_delay_s = 0.1
    inst = await admin.instance(slow, name="slow")
    await admin.group("chat", [inst])
    c = client(gateway, await admin.key())

    stream = await c.chat.completions.create(
        model="chat", messages=[{"role": "user", "content": "x"}], stream=True
    )
    seen = 0
    async for _ in stream:
        seen += 1
        if seen == 2:
            break
    await stream.close()
    took = await eventually(lambda: slow.streams_cancelled == 1, within=10)
    assert took < 1.5
    state = gateway.runtime.board.state(uuid.UUID(inst["id"]))
    await eventually(lambda: state.in_flight == 0)
    await c.close()


def test_relay_cuts_only_at_sse_event_boundaries() -> None:
    # An error event appended after a half-sent event would corrupt both for the client.
    from modelyard_gateway.proxy.streaming import _event_boundary

    assert _event_boundary(b"data: 1\n\ndata: 2") == len(b"data: 1\n\n")
    assert _event_boundary(b"data: 1\r\n\r\n") == len(b"data: 1\r\n\r\n")
    assert _event_boundary(b"data: {partial") == 0
