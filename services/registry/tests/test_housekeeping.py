"""Housekeeping runs on one replica at a time; when that replica dies, another takes over."""

from __future__ import annotations

from datetime import timedelta

from modelyard_common.web import ServiceRuntime
from modelyard_registry.db import IdempotencyRecord
from modelyard_registry.settings import RegistrySettings


async def test_one_replica_at_a_time_runs_housekeeping(settings: RegistrySettings) -> None:
    replicas = [ServiceRuntime(settings) for _ in range(3)]
    for replica in replicas:
        replica.retain(IdempotencyRecord.created_at, timedelta(days=1))
    try:
        rounds = [await replica.housekeeping_round() for replica in replicas]
        again = [await replica.housekeeping_round() for replica in replicas]

        assert [r is not None for r in rounds] == [True, False, False]
        assert [r is not None for r in again] == [True, False, False]

        await replicas[0].stop()  # the leader goes; its lock goes with its connection
        after = [await replica.housekeeping_round() for replica in replicas[1:]]

        assert [r is not None for r in after] == [True, False]
    finally:
        for replica in replicas[1:]:
            await replica.stop()
