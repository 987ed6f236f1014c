"""/metrics is guarded (a token, or a port of its own); /healthz and /readyz stay open."""

from __future__ import annotations

import httpx
import pytest
from asgi_lifespan import LifespanManager

from modelyard_common.settings import ServiceSettings
from modelyard_common.web import create_app
from modelyard_testkit.testing import assert_problem, free_port

TOKEN = "metrics-token-0123456789abcdef"


def _client(settings: ServiceSettings) -> httpx.AsyncClient:
    app = create_app(title="t", description="t", version="0", settings=settings, routers=[])
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://svc")


async def _open_probes(client: httpx.AsyncClient) -> None:
    assert (await client.get("/healthz")).status_code == 200
    assert (await client.get("/readyz")).status_code == 200


async def test_metrics_are_open_in_dev_without_a_token() -> None:
    async with _client(ServiceSettings(env="dev")) as client:
        assert (await client.get("/metrics")).status_code == 200
        await _open_probes(client)


async def test_metrics_are_refused_in_prod_without_a_token_or_port() -> None:
    async with _client(ServiceSettings(env="prod")) as client:
        problem = assert_problem(await client.get("/metrics"), 403)
        assert "MODELYARD_METRICS_TOKEN" in problem["detail"]
        await _open_probes(client)


@pytest.mark.parametrize("env", ["dev", "prod"])
async def test_metrics_need_the_token_when_one_is_set(env: str) -> None:
    async with _client(ServiceSettings(env=env, metrics_token=TOKEN)) as client:
        assert_problem(await client.get("/metrics"), 401)
        wrong = {"Authorization": "Bearer " + "x" * len(TOKEN)}
        assert_problem(await client.get("/metrics", headers=wrong), 401)
        right = await client.get("/metrics", headers={"Authorization": f"Bearer {TOKEN}"})
        assert right.status_code == 200
        assert "modelyard_http_requests_total" in right.text
        await _open_probes(client)


async def test_metrics_port_serves_them_apart_from_the_service_port() -> None:
    port = free_port()
    settings = ServiceSettings(env="prod", metrics_port=port)
    app = create_app(title="t", description="t", version="0", settings=settings, routers=[])
    async with (
        LifespanManager(app),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://svc") as svc,
    ):
        assert (await svc.get("/metrics")).status_code == 404
        await _open_probes(svc)
        async with httpx.AsyncClient(timeout=5) as scraper:
            scraped = await scraper.get(f"http://127.0.0.1:{port}/metrics")
        assert scraped.status_code == 200
        assert "modelyard_http_requests_total" in scraped.text
    with pytest.raises(httpx.ConnectError):  # the listener stops with the app
        async with httpx.AsyncClient(timeout=2) as late:
            await late.get(f"http://127.0.0.1:{port}/metrics")
