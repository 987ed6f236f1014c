"""The AI Act register PDF is laid out off the event loop: other work goes on while it renders."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from modelyard_registry.reports import service as reports_service
from modelyard_registry.reports.pdf import render_register
from modelyard_testkit.testing import create_ok

TICK_S = 0.001
MODELS = 20  # about a third of a second of ReportLab layout on a developer machine


async def test_a_big_register_renders_while_the_loop_keeps_ticking(
    client: httpx.AsyncClient,
    as_role: Callable[..., dict[str, str]],
    system_body: dict[str, Any],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    editor = as_role("editor")
    system = await create_ok(client, "/v1/systems", system_body, editor)
    use = "Scores each payment before authorisation, with a human review of refusals. " * 20
    for i in range(MODELS):
        model = await create_ok(
            client, "/v1/models", {"name": f"scorer-{i}", "learning_type": "supervised"}, editor
        )
        await create_ok(
            client,
            f"/v1/systems/{system['id']}/models",
            {"model_id": model["id"], "description_of_use": use},
            editor,
        )

    ticks = 0
    during: list[tuple[float, int]] = []  # (render seconds, ticks counted while it rendered)

    def timed_render(**kwargs: Any) -> bytes:
        first, started = ticks, time.perf_counter()
        pdf = render_register(**kwargs)
        during.append((time.perf_counter() - started, ticks - first))
        return pdf

    monkeypatch.setattr(reports_service, "render_register", timed_render)

    async def ticker() -> None:
        nonlocal ticks
        while True:
            await asyncio.sleep(TICK_S)
            ticks += 1

    ticking = asyncio.create_task(ticker())
    try:
        response = await client.get(f"/v1/systems/{system['id']}/register.pdf", headers=editor)
    finally:
        ticking.cancel()
    assert response.status_code == 200, response.text
    assert response.content.startswith(b"%PDF")
    [(seconds, counted)] = during
    assert seconds > 0.05, f"the register rendered in {seconds:.3f}s: too small to tell"
    # On the loop, the ticker could not run at all while ReportLab worked: zero ticks.
    assert counted >= 5, f"{counted} ticks in {seconds:.3f}s of rendering: the loop was blocked"
