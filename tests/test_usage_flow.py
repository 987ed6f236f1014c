"""Gateway usage reaches the registry: requests through a group bound to a registry model are
counted by the gateway process and read back from the registry process's `/usage` (issue 14).

Registry, deployer and gateway run as processes on a database and vhost of their own; the
backend is a fake OpenAI server in this test that reports `usage`. No Docker is needed.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from suite_testkit import Suite, running_suite  # tests/ on path

from modelyard_testkit.testing import bearer, wait_for

pytestmark = [pytest.mark.end_to_end]

WORKSPACE = "usage-flow"


@pytest.fixture
async def backend() -> AsyncIterator[tuple[int, dict[str, int]]]:
    """A fake OpenAI backend on loopback; set `state["fail"]` to make it answer 500."""
    state = {"fail": 0}

    async def chat(request: web.Request) -> web.Response:
        body = await request.json()
        if state["fail"]:
            return web.json_response({"error": {"message": "boom"}}, status=500)
        return web.json_response(
            {
                "id": "chatcmpl-1",
                "object": "chat.completion",
                "model": body["model"],
                "choices": [{"index": 0, "message": {"role": "assistant", "content": "hi"}}],
                "usage": {"prompt_tokens": 11, "completion_tokens": 7, "total_tokens": 18},
            }
        )

    app = web.Application()
    app.router.add_post("/v1/chat/completions", chat)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    server = site._server
    assert server is not None
    port: int = getattr(server, "sockets", [])[0].getsockname()[1]
    yield port, state
    await runner.cleanup()


async def test_gateway_usage_is_read_back_from_the_registry(
    commands: Any, tmp_path: Path, backend: tuple[int, dict[str, int]]
) -> None:
    port, state = backend
    env = {"MODELYARD_GATEWAY_USAGE_FLUSH_S": "0.5"}
    async with running_suite(
        commands, tmp_path, workspace=WORKSPACE, kind=Suite, extra_env=env
    ) as suite:
        model = await suite.post(
            f"{suite.registry}/v1/models",
            {"name": "chatty", "learning_type": "supervised", "functionality": "chat"},
            status=201,
        )
        instance = await suite.post(
            f"{suite.gateway}/v1/instances",
            {
                "name": "fake",
                "kind": "local",
                "host": "127.0.0.1",
                "port": port,
                "upstream_model": "fake-model",
                "health_path": "",
            },
            status=201,
        )
        await suite.post(
            f"{suite.gateway}/v1/groups",
            {"name": "chatty", "instance_ids": [instance["id"]], "registry_model_id": model["id"]},
            status=201,
        )
        key = (await suite.post(f"{suite.gateway}/v1/keys", {"name": "k"}, status=201))["key"]
        client = {"Authorization": f"Bearer {key}"}
        chat = {"model": "chatty", "messages": [{"role": "user", "content": "hello"}]}

        async def answered(status: int) -> None:
            response = await suite.http.post(
                f"{suite.gateway}/v1/chat/completions", json=chat, headers=client
            )
            assert response.status_code == status, response.text

        # The group reaches the gateway's catalog by NOTIFY: wait for the first answer.
        async def served() -> bool:
            response = await suite.http.post(
                f"{suite.gateway}/v1/chat/completions", json=chat, headers=client
            )
            return response.status_code == 200

        await wait_for(served, timeout=15, interval=0.2)
        for _ in range(4):
            await answered(200)
        state["fail"] = 1
        await answered(503)

        usage_url = f"{suite.registry}/v1/models/{model['id']}/usage"

        async def totals() -> dict[str, int] | None:
            body = await suite.get(usage_url)
            found: dict[str, int] = body["totals"]
            return found if found["requests"] >= 6 else None

        counted = await wait_for(totals, timeout=30, interval=0.3)
        await asyncio.sleep(1.5)  # a few more flushes: nothing counts twice
        body = await suite.get(usage_url)
        assert (
            body["totals"]
            == counted
            == {
                "requests": 6,
                "errors": 1,
                "prompt_tokens": 5 * 11,
                "completion_tokens": 5 * 7,
                "total_tokens": 5 * 18,
            }
        )
        assert len(body["days"]) in (1, 2)  # 2 only when the test straddles UTC midnight
        elsewhere = await suite.http.get(usage_url, headers=bearer("admin", "another-workspace"))
        assert elsewhere.status_code == 404, elsewhere.text
