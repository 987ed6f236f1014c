"""Helpers the services share for their views, schemas, tables and queues (no server needed)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any, ClassVar

import pytest
from pydantic import BaseModel, ValidationError
from sqlalchemy.orm import DeclarativeBase

from modelyard_common.contracts import EVENTS_EXCHANGE
from modelyard_common.db import schema_metadata
from modelyard_common.event_queues import EventQueue, consume_once
from modelyard_common.events import CloudEvent
from modelyard_common.governance.tables import projection_models
from modelyard_common.infrastructure import infrastructure_models
from modelyard_common.infrastructure_upkeep import relay_and_purge
from modelyard_common.messaging import Binding
from modelyard_common.schema_examples import examples_config
from modelyard_common.settings import ServiceSettings
from modelyard_common.views import view_of
from modelyard_common.web import ServiceRuntime

SCHEMA = "shared_wiring_test"


class _Base(DeclarativeBase):
    metadata = schema_metadata(SCHEMA)


ModelApproval, WorkspacePolicy = projection_models(_Base)
tables = infrastructure_models(_Base)


class _Thing(BaseModel):
    id: uuid.UUID
    name: str
    count: int
    has_secret: bool
    note: str = "none"


@dataclass
class _Row:
    id: uuid.UUID
    name: str
    count: Any
    secret: str | None


def test_a_view_reads_the_row_and_the_computed_fields() -> None:
    row = _Row(uuid.uuid4(), "alpha", "3", secret=None)
    view = view_of(_Thing, row, has_secret=row.secret is not None, name="shown")
    assert view == _Thing(id=row.id, name="shown", count=3, has_secret=False)
    with pytest.raises(ValidationError):  # the schema's own validation still applies
        view_of(_Thing, _Row(uuid.uuid4(), "beta", "many", secret="s"), has_secret=True)
    with pytest.raises(ValidationError):  # a field neither the row nor `computed` has
        view_of(_Thing, row)


def test_examples_config_lists_the_examples_in_the_json_schema() -> None:
    class _Example(BaseModel):
        model_config = examples_config({"name": "a"}, {"name": "b"}, extra="forbid")

        name: str

    assert _Example.model_json_schema()["examples"] == [{"name": "a"}, {"name": "b"}]
    with pytest.raises(ValidationError):
        _Example.model_validate({"name": "a", "other": 1})


def test_the_projection_classes_are_mapped_as_if_declared_on_the_base() -> None:
    for model, table in (
        (ModelApproval, "model_approvals"),
        (WorkspacePolicy, "workspace_policies"),
    ):
        assert model.__module__ == __name__
        assert model.__table__.name == table  # type: ignore[attr-defined]
        assert model.__table__.schema == SCHEMA  # type: ignore[attr-defined]
    assert [ModelApproval.__name__, WorkspacePolicy.__name__] == [
        "ModelApproval",
        "WorkspacePolicy",
    ]


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
