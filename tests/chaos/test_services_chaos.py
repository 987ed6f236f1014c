"""Registry and deployer under kill -9, a RabbitMQ restart and a PostgreSQL restart (issue 9)."""

from __future__ import annotations

import os

import pytest
from chaoskit import print_table
from services_chaos import run

SECONDS = float(os.environ.get("MODELYARD_CHAOS_SECONDS", "14"))


@pytest.mark.timeout(400)
async def test_acknowledged_writes_events_and_commands_survive_kills_and_restarts() -> None:
    figures = await run(SECONDS)
    print_table([figures.row()], "Registry and deployer chaos")
    assert len(figures.faults) == 4, figures.faults
    assert figures.writes_acknowledged > 50
    assert figures.writes_persisted == figures.writes_acknowledged
    assert figures.events_arrived == figures.events_expected == figures.writes_acknowledged
    assert figures.events_with_two_ids == 0  # a redelivery always carries the same id
    assert figures.commands_accepted > 10
    assert figures.commands_delivered == figures.commands_accepted
    assert figures.final_generation_ok
