"""Wiring the services share: the outbox relay with the bookkeeping purge, event queues, the
frozen heap."""

from __future__ import annotations

import gc
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any, ClassVar

from fastapi import FastAPI
from sqlalchemy.orm import DeclarativeBase

from modelyard_common.contracts import EVENTS_EXCHANGE
from modelyard_common.db import schema_metadata
from modelyard_common.event_queues import EventQueue, consume_once
from modelyard_common.events import CloudEvent
from modelyard_common.infrastructure import infrastructure_models
from modelyard_common.infrastructure_upkeep import relay_and_purge
from modelyard_common.messaging import Binding
from modelyard_common.settings import ServiceSettings
from modelyard_common.web import YOUNG_GC_THRESHOLD, ServiceRuntime, with_frozen_heap

SCHEMA = "shared_wiring_test"


class _Base(DeclarativeBase):
    metadata = schema_metadata(SCHEMA)


tables = infrastructure_models(_Base)


class _Settings(ServiceSettings):
    service_name: ClassVar[str] = "wiring"


def test_the_relay_takes_the_outbox_and_the_bookkeeping_is_purged() -> None:
    settings = _Settings(idempotency_retention_h=2, processed_events_retention_h=3)
    runtime = ServiceRuntime(settings)
    relay = relay_and_purge(runtime, tables)
    assert relay.model is tables.OutboxEvent
    assert runtime._retained == [  # noqa: SLF001 - what the housekeeping round deletes
        (tables.IdempotencyRecord.created_at, timedelta(hours=2)),
        (tables.ProcessedEvent.processed_at, timedelta(hours=3)),
    ]


@dataclass
class _Broker:
    consumed: list[tuple[str, list[Binding], Any, int]] = field(default_factory=list)

    async def consume(
        self, queue: str, bindings: list[Binding], handler: Any, *, delivery_limit: int
    ) -> str:
        self.consumed.append((queue, bindings, handler, delivery_limit))
        return "consumer"


async def _apply(session: Any, event: CloudEvent) -> None:
    return None


async def test_a_queue_binds_its_keys_on_the_events_exchange() -> None:
    broker = _Broker()
    keyed = EventQueue("svc.keyed", ("a.b", "a.c"), _apply, in_order_of=lambda e: e.id)
    for queue in (EventQueue("svc.plain", ("a.b",), _apply), keyed):
        consumer = await consume_once(
            broker,  # type: ignore[arg-type]
            None,  # type: ignore[arg-type]
            tables.ProcessedEvent,
            queue,
            delivery_limit=4,
        )
        assert consumer == "consumer"
    (plain_name, plain_bindings, _, limit), (name, bindings, serialized, _) = broker.consumed
    assert (plain_name, limit) == ("svc.plain", 4)
    assert plain_bindings == [Binding(EVENTS_EXCHANGE, "a.b")]
    assert name == "svc.keyed"
    assert bindings == [Binding(EVENTS_EXCHANGE, "a.b"), Binding(EVENTS_EXCHANGE, "a.c")]
    assert serialized.key is keyed.in_order_of  # events of one key run one after another


async def test_once_started_the_heap_is_frozen_and_young_collections_are_rarer() -> None:
    # A request's objects are alive while it runs: at CPython's default threshold (700), sixteen
    # requests in flight set off a young collection again and again, each walking them all.
    before = gc.get_threshold()
    gc.set_threshold(700, *before[1:])
    gc.unfreeze()
    collections: list[int] = []

    def watch(phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            collections.append(info["generation"])

    try:
        async with with_frozen_heap(None)(FastAPI()):
            assert gc.get_freeze_count() > 0
            assert gc.get_threshold() == (YOUNG_GC_THRESHOLD, *before[1:])
            gc.callbacks.append(watch)
            kept = [[i] for i in range(5_000)]  # alive and tracked: 700 would collect 7 times
            gc.callbacks.remove(watch)
            assert len(kept) == 5_000
            assert collections == []
    finally:
        if watch in gc.callbacks:
            gc.callbacks.remove(watch)
        gc.set_threshold(*before)
