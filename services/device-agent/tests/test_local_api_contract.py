"""The agent's local API answers what its OpenAPI says, found by fuzzing it."""

from __future__ import annotations

import httpx
from modelyard_testkit.agent import AgentFactory

from modelyard_agent.app import MAX_HANDLER_BODY_BYTES, create_app


async def test_405_allow_problem_types_and_handler_bodies(make_agent: AgentFactory) -> None:
    agent = await make_agent(wait_consuming=False)
    app = create_app(agent)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://agent") as client:
        response = await client.put("/models/m/logs")
        assert response.status_code == 405
        # The logs resource, not the handler route that would also match this path.
        assert set(response.headers["allow"].split(", ")) == {"GET", "HEAD"}
        assert response.headers["content-type"] == "application/problem+json"

        # A handler payload is relayed as is: larger than JSON routes read, NUL included.
        payload = b'{"text": "\\u0000"}' + b" " * (2 * 1024 * 1024)
        response = await client.post(
            "/models/nowhere/predict", content=payload, headers={"content-type": "application/json"}
        )
        assert response.status_code == 404  # no such model, not 413 or 422
        response = await client.post(
            "/models/nowhere/predict",
            content=b" " * (MAX_HANDLER_BODY_BYTES + 1),
            headers={"content-type": "application/octet-stream"},
        )
        assert response.status_code == 413

        spec = (await client.get("/openapi.json")).json()
    logs = spec["paths"]["/models/{model_name}/logs"]["get"]["responses"]
    assert list(logs["404"]["content"]) == ["application/problem+json"]
    assert list(logs["422"]["content"]) == ["application/problem+json"]
