"""CloudEvents 1.0 envelope (JSON structured mode)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr


class CloudEvent(BaseModel):
    """A CloudEvents 1.0 event; `id` is the consumers' idempotency key."""

    model_config = ConfigDict(extra="allow")

    specversion: str = "1.0"
    id: str = Field(default_factory=lambda: str(uuid.uuid4()))
    source: str
    type: str
    time: datetime = Field(default_factory=lambda: datetime.now(UTC))
    datacontenttype: str = "application/json"
    subject: str | None = None
    data: dict[str, Any] = Field(default_factory=dict)
    # Set by the consumer from the AMQP `user_id` property, which the broker checks against the
    # connection's login; never read from the event's own JSON.
    _sender: str | None = PrivateAttr(default=None)

    @property
    def sender(self) -> str | None:
        """Return the broker-validated login that published this event (None if unknown)."""
        return self._sender

    def to_bytes(self) -> bytes:
        """Return the event serialised as JSON."""
        return self.model_dump_json(exclude_none=True).encode()


def new_event(
    *, type: str, source: str, data: dict[str, Any], subject: str | None = None
) -> CloudEvent:
    """Return a new event with a fresh id and the current time."""
    return CloudEvent(type=type, source=source, subject=subject, data=data)
