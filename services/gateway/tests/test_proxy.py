"""The OpenAI-compatible API, driven with the official `openai` package."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import httpx
import openai
import pytest
from gateway_testkit import Admin, BackendPool, FakeBackend, GatewayServer
from openai.types.chat import ChatCompletion


def clients(gateway: GatewayServer, key: str) -> tuple[openai.OpenAI, openai.AsyncOpenAI]:
    base = gateway.url + "/v1"
    return (
        openai.OpenAI(base_url=base, api_key=key, max_retries=0, timeout=10),
        openai.AsyncOpenAI(base_url=base, api_key=key, max_retries=0, timeout=10),
    )


async def test_chat_sync_and_async_rewrite_model_and_say_who_served(
    gateway: GatewayServer, admin: Admin, backends: Callable[[str], FakeBackend]
) -> None:
    backend = backends("b1")
    inst = await admin.instance(backend, upstream_model="llama-3")
    await admin.group("chat", [inst])
    key = await admin.key()
    sync_client, async_client = clients(gateway, key)

    def sync_call() -> openai._legacy_response.LegacyAPIResponse[ChatCompletion]:
        return sync_client.chat.completions.with_raw_response.create(
            model="chat",
            messages=[{"role": "user", "content": "hi"}],
            extra_body={"top_k": 5, "custom_field": {"nested": True}},
        )

    raw = await asyncio.to_thread(sync_call)
    completion = raw.parse()
    assert completion.choices[0].message.content == "Hello from b1"
    assert raw.headers["x-modelyard-instance"] == inst["name"]
    assert raw.headers["x-modelyard-attempts"] == "1"
    sent = backend.requests[-1]
    assert sent["model"] == "llama-3"
    assert sent["top_k"] == 5
    assert sent["custom_field"] == {"nested": True}

    async_completion = await async_client.chat.completions.create(
        model="chat", messages=[{"role": "user", "content": "hi"}]
    )
    assert async_completion.choices[0].message.content == "Hello from b1"
    await async_client.close()


async def test_streams_sync_and_async_arrive_chunk_by_chunk(
    gateway: GatewayServer, admin: Admin, backends: Callable[[str], FakeBackend]
) -> None:
    backend = backends("s1")
    backend.behaviour.stream_chunks = 4
    backend.behaviour.chunk_delay_s = 0.2
    inst = await admin.instance(backend)
    await admin.group("chat", [inst])
    key = await admin.key()
    sync_client, async_client = clients(gateway, key)

    loop = asyncio.get_running_loop()
    arrivals: list[float] = []
    texts: list[str] = []
    stream = await async_client.chat.completions.create(
        model="chat", messages=[{"role": "user", "content": "hi"}], stream=True
    )
    async for chunk in stream:
        arrivals.append(loop.time())
        texts.append(chunk.choices[0].delta.content or "")
    assert "".join(texts) == "Hello0 Hello1 Hello2 Hello3 "
    # Relayed as they come, not buffered: chunks arrive spread over the backend's delays.
    assert arrivals[-1] - arrivals[0] >= 0.5

    def sync_stream() -> str:
        with sync_client.chat.completions.with_streaming_response.create(
            model="chat", messages=[{"role": "user", "content": "hi"}], stream=True
        ) as response:
            assert response.headers["x-modelyard-instance"] == inst["name"]
            return "".join(c.choices[0].delta.content or "" for c in response.parse())

    backend.behaviour.chunk_delay_s = 0.0
    assert await asyncio.to_thread(sync_stream) == "Hello0 Hello1 Hello2 Hello3 "
    await async_client.close()


async def test_completions_and_embeddings_pass_through(
    gateway: GatewayServer, admin: Admin, backends: Callable[[str], FakeBackend]
) -> None:
    backend = backends("e1")
    inst = await admin.instance(backend, upstream_model="emb-small")
    await admin.group("embed", [inst])
    key = await admin.key()
    _, client = clients(gateway, key)

    embeddings = await client.embeddings.create(model="embed", input=["a", "b"])
    assert [d.index for d in embeddings.data] == [0, 1]
    assert backend.requests[-1]["model"] == "emb-small"

    completion = await client.completions.create(model="embed", prompt="once")
    assert completion.choices[0].text == "text from e1"

    stream = await client.completions.create(model="embed", prompt="once", stream=True)
    assert [c.choices[0].text async for c in stream] == ["Hello0 ", "Hello1 ", "Hello2 "]
    await client.close()


async def test_default_params_merge_under_client_fields_and_caps_apply(
    gateway: GatewayServer, admin: Admin, backends: Callable[[str], FakeBackend]
) -> None:
    backend = backends("p1")
    inst = await admin.instance(
        backend,
        default_params={"temperature": 0.1, "max_tokens": 100, "seed": 7},
        param_caps={"max_tokens": 256},
    )
    await admin.group("chat", [inst])
    _, client = clients(gateway, await admin.key())

    await client.chat.completions.create(
        model="chat", messages=[{"role": "user", "content": "x"}], temperature=0.9, max_tokens=4000
    )
    sent = backend.requests[-1]
    assert sent["temperature"] == 0.9  # the client's value wins over the default
    assert sent["seed"] == 7  # defaults fill in what the client left out
    assert sent["max_tokens"] == 256  # caps bound the client
    await client.close()


async def test_request_errors_come_back_as_is_without_failover(
    gateway: GatewayServer, admin: Admin, backends: Callable[[str], FakeBackend]
) -> None:
    first, second = backends("r1"), backends("r2")
    first.behaviour.mode = "400"
    await admin.group("chat", [await admin.instance(first), await admin.instance(second)])
    _, client = clients(gateway, await admin.key())

    with pytest.raises(openai.BadRequestError) as caught:
        await client.chat.completions.create(
            model="chat", messages=[{"role": "user", "content": "x"}]
        )
    assert caught.value.code == "context_length_exceeded"
    assert caught.value.response.headers["x-modelyard-attempts"] == "1"
    assert second.requests == []
    await client.close()


@pytest.mark.parametrize("status", [400, 404, 405, 413, 422])
async def test_a_4xx_the_request_caused_is_relayed_on_every_endpoint(
    status: int, gateway: GatewayServer, admin: Admin, backends: Callable[[str], FakeBackend]
) -> None:
    """Issue 22: a backend's 404 on `completions` or `embeddings` came back as a 503."""
    first, second = backends("r1"), backends("r2")
    first.behaviour.mode = str(status)
    await admin.group(
        "chat", [await admin.instance(first, name="r1"), await admin.instance(second, name="r2")]
    )
    _, client = clients(gateway, await admin.key())
    calls = {
        "chat": lambda: client.chat.completions.create(
            model="chat", messages=[{"role": "user", "content": "x"}]
        ),
        "chat stream": lambda: client.chat.completions.create(
            model="chat", messages=[{"role": "user", "content": "x"}], stream=True
        ),
        "completions": lambda: client.completions.create(model="chat", prompt="x"),
        "embeddings": lambda: client.embeddings.create(model="chat", input="x"),
    }
    for name, call in calls.items():
        with pytest.raises(openai.APIStatusError) as caught:
            await call()
        assert caught.value.status_code == status, name
        assert caught.value.code == ("context_length_exceeded" if status == 400 else f"e{status}")
        assert caught.value.response.headers["x-modelyard-instance"] == "r1", name
        assert caught.value.response.headers["x-modelyard-attempts"] == "1", name
    assert len(first.requests) == len(calls)
    assert second.requests == []  # no failover: the other instance would refuse it too
    await client.close()


async def test_openai_errors_for_bad_keys_models_and_bodies(
    gateway: GatewayServer, admin: Admin, backends: Callable[[str], FakeBackend]
) -> None:
    await admin.group("chat", [await admin.instance(backends("k1"))])
    key = await admin.key()
    _, bad = clients(gateway, "sk-my-not-a-key")
    with pytest.raises(openai.AuthenticationError) as caught:
        await bad.models.list()
    assert caught.value.code == "invalid_api_key"

    _, client = clients(gateway, key)
    with pytest.raises(openai.NotFoundError) as missing:
        await client.chat.completions.create(
            model="nope", messages=[{"role": "user", "content": "x"}]
        )
    assert missing.value.code == "model_not_found"

    async with httpx.AsyncClient(base_url=gateway.url) as http:
        response = await http.post(
            "/v1/chat/completions", content=b"{not json", headers={"Authorization": f"Bearer {key}"}
        )
        assert response.status_code == 400
        assert response.json()["error"]["code"] == "invalid_json"
        response = await http.get("/v1/models")
        assert response.status_code == 401
        assert response.json()["error"]["type"] == "invalid_request_error"
    await bad.close()
    await client.close()


async def test_upstream_connections_are_kept_alive_and_reused(
    gateway: GatewayServer, admin: Admin, backends: Callable[[str], FakeBackend]
) -> None:
    backend = backends("reuse")
    await admin.group("chat", [await admin.instance(backend)])
    _, client = clients(gateway, await admin.key())
    for _ in range(5):
        await client.chat.completions.create(
            model="chat", messages=[{"role": "user", "content": "x"}]
        )
    stream = await client.chat.completions.create(
        model="chat", messages=[{"role": "user", "content": "x"}], stream=True
    )
    assert len([c async for c in stream]) == 3
    await client.chat.completions.create(model="chat", messages=[{"role": "user", "content": "x"}])
    assert len(backend.requests) == 7
    assert len(backend.peers) == 1  # one connection carried every request, streams included
    await client.close()


async def test_browser_requests_take_the_documented_route_with_the_same_answer(
    gateway: GatewayServer, admin: Admin, backends: Callable[[str], FakeBackend]
) -> None:
    backend = backends("browser")
    inst = await admin.instance(backend)
    await admin.group("chat", [inst])
    key = await admin.key()
    async with httpx.AsyncClient(base_url=gateway.url) as http:
        response = await http.post(
            "/v1/chat/completions",
            json={"model": "chat", "messages": [{"role": "user", "content": "x"}]},
            headers={"Authorization": f"Bearer {key}", "Origin": "http://ui.example"},
        )
        assert response.status_code == 200
        assert response.headers["x-modelyard-instance"] == inst["name"]
        assert "x-request-id" in response.headers  # went through the ordinary middleware
        models = await http.get(
            "/v1/models", headers={"Authorization": f"Bearer {key}", "Origin": "http://ui.example"}
        )
        assert [m["id"] for m in models.json()["data"]] == ["chat"]


async def test_disabled_instances_and_groups_are_not_used(
    gateway: GatewayServer, admin: Admin, backends: Callable[[str], FakeBackend]
) -> None:
    first, second = backends("first"), backends("second")
    one = await admin.instance(first, name="one")
    group = await admin.group("chat", [one, await admin.instance(second, name="two")])
    _, client = clients(gateway, await admin.key())

    await admin.patch(
        f"/v1/instances/{one['id']}", {"enabled": False}, headers={"If-Match": one["etag"]}
    )
    raw = await client.chat.completions.with_raw_response.create(
        model="chat", messages=[{"role": "user", "content": "x"}]
    )
    assert raw.headers["x-modelyard-instance"] == "two"
    assert raw.headers["x-modelyard-attempts"] == "1"
    assert first.requests == []

    await admin.patch(
        f"/v1/groups/{group['id']}", {"enabled": False}, headers={"If-Match": group["etag"]}
    )
    with pytest.raises(openai.NotFoundError):
        await client.chat.completions.create(
            model="chat", messages=[{"role": "user", "content": "x"}]
        )
    assert [m.id for m in (await client.models.list()).data] == []
    await client.close()


async def test_cloud_instances_can_go_through_an_http_proxy_with_credentials(
    gateway: GatewayServer, admin: Admin, backends: Callable[[str], FakeBackend]
) -> None:
    # The fake "proxy" answers absolute-form requests itself, which shows they went through it.
    proxy = backends("proxy")
    response = await admin.post(
        "/v1/instances",
        {
            "name": "behind-proxy",
            "kind": "cloud",
            "base_url": "http://api.invalid:9/v1",
            "proxy_url": f"http://127.0.0.1:{proxy.port}",
            "proxy_username": "user",
            "proxy_password": "pass-word",
            "upstream_model": "m",
            "health_path": "",
        },
    )
    assert response.status_code == 201, response.text
    assert "pass-word" not in response.text
    await admin.group("chat", [response.json()])
    _, client = clients(gateway, await admin.key())
    completion = await client.chat.completions.create(
        model="chat", messages=[{"role": "user", "content": "x"}]
    )
    assert completion.choices[0].message.content == "Hello from proxy"
    assert proxy.headers[-1]["Proxy-Authorization"].startswith("Basic ")
    await client.close()


async def test_connections_the_upstream_closed_while_idle_are_not_reused(
    gateway: GatewayServer, admin: Admin, backend_pool: BackendPool
) -> None:
    backend = FakeBackend("brief", keepalive_timeout=0.2)
    backend_pool.thread.run(backend.start())
    backend_pool.backends.append(backend)
    await admin.group("chat", [await admin.instance(backend)])
    _, client = clients(gateway, await admin.key())
    for _ in range(3):
        raw = await client.chat.completions.with_raw_response.create(
            model="chat", messages=[{"role": "user", "content": "x"}]
        )
        assert raw.headers["x-modelyard-attempts"] == "1"
        await asyncio.sleep(0.4)  # the backend closes the idle connection meanwhile
    assert len(backend.peers) == 3
    await client.close()
