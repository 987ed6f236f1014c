"""One client request as the proxy fills it in while the request runs (no I/O, no locks)."""

from __future__ import annotations

import random
import time
import uuid
from collections.abc import Awaitable, Callable, Mapping, MutableMapping
from datetime import UTC, datetime
from typing import Any

Message = MutableMapping[str, Any]
Send = Callable[[Message], Awaitable[None]]

# Columns of `gateway.request_log`, in the order `RequestRecord.row` gives them.
COLUMNS = (
    "id",
    "at",
    "workspace",
    "key_id",
    "endpoint",
    "group_name",
    "registry_model_id",
    "instances",
    "attempts",
    "status",
    "error_cause",
    "prompt_tokens",
    "completion_tokens",
    "total_tokens",
    "ttfb_ms",
    "duration_ms",
    "stream",
    "replica",
    "request_body",
    "response_body",
)

_MAX_TOKENS = 2**31 - 1


def _tokens(value: object) -> int | None:
    """Return a reported token count that fits the column, or None."""
    return value if type(value) is int and 0 <= value <= _MAX_TOKENS else None


def _ms(seconds: float) -> int:
    return min(int(seconds * 1000), _MAX_TOKENS)


def _text(raw: bytes | None) -> str | None:
    """Return captured bytes as text PostgreSQL can store (no NUL characters)."""
    if raw is None:
        return None
    return raw.decode("utf-8", "replace").replace("\x00", "\ufffd")


_getrandbits = random.getrandbits
_VERSION_4 = (~(0xF000 << 64) & ~(0xC000 << 48)) & ((1 << 128) - 1)
_VERSION_4_BITS = (0x4000 << 64) | (0x8000 << 48)


def random_uuid() -> uuid.UUID:
    """Return a random (version 4) UUID without a system call per record.

    A record's id only has to be unique, not unguessable: the module's generator (reseeded in
    every forked worker) gives its 122 random bits at half the cost of `uuid.uuid4()`.
    """
    return uuid.UUID(int=_getrandbits(128) & _VERSION_4 | _VERSION_4_BITS)


class RequestRecord:
    """What the log keeps of one request; the proxy sets fields as the request goes on.

    Times are taken with the process clocks here and turned into rows only when flushed, so the
    request's path does a few attribute writes and nothing else.
    """

    __slots__ = (
        "at",
        "attempts",
        "body_cap",
        "completion_tokens",
        "endpoint",
        "error_cause",
        "first_byte",
        "group_name",
        "instances",
        "key_id",
        "prompt_tokens",
        "registry_model_id",
        "request_body",
        "response_body",
        "started",
        "status",
        "stream",
        "total_tokens",
        "workspace",
        "ended",
    )

    def __init__(self, *, workspace: str, key_id: uuid.UUID, endpoint: str) -> None:
        self.at = time.time()
        self.started = time.perf_counter()
        self.first_byte: float | None = None
        self.ended: float | None = None
        self.workspace = workspace
        self.key_id = key_id
        self.endpoint = endpoint
        self.group_name: str | None = None
        self.registry_model_id: uuid.UUID | None = None
        self.instances: list[str] = []
        self.attempts = 0
        self.status = 0
        self.error_cause: str | None = None
        self.prompt_tokens: int | None = None
        self.completion_tokens: int | None = None
        self.total_tokens: int | None = None
        self.stream = False
        self.body_cap = 0  # > 0: the group logs bodies, each up to this many bytes
        self.request_body: bytes | None = None
        self.response_body: bytearray | None = None

    def capture_bodies(self, request_body: bytes, cap: int) -> None:
        """Keep the request body (capped) and, from now on, what is sent back (capped)."""
        self.body_cap = cap
        self.request_body = request_body[:cap]
        self.response_body = bytearray()

    def usage(self, usage: Mapping[str, Any] | None) -> None:
        """Keep the token counts a backend reported (OpenAI `usage`), if any."""
        if not usage:
            return
        self.prompt_tokens = _tokens(usage.get("prompt_tokens"))
        self.completion_tokens = _tokens(usage.get("completion_tokens"))
        self.total_tokens = _tokens(usage.get("total_tokens"))

    def ended_with(self, status: int, cause: str | None = None) -> None:
        """Set the status the client got and, for a failure, its cause code."""
        self.status = status
        self.error_cause = cause

    def watch(self, send: Send) -> Send:
        """Return `send` noting when the response starts (and keeping the body when logged)."""

        async def watched(message: Message) -> None:
            kind = message["type"]
            if kind == "http.response.start":
                self.first_byte = time.perf_counter()
                self.status = message["status"]
            elif kind == "http.response.body" and self.response_body is not None:
                room = self.body_cap - len(self.response_body)
                if room > 0:
                    self.response_body += message.get("body", b"")[:room]
            await send(message)

        return watched

    def row(self, replica: str) -> tuple[Any, ...]:
        """Return the record as a row of `gateway.request_log` (in `COLUMNS` order)."""
        ended = self.ended if self.ended is not None else time.perf_counter()
        return (
            random_uuid(),
            datetime.fromtimestamp(self.at, UTC),
            self.workspace,
            self.key_id,
            self.endpoint,
            self.group_name[:200] if self.group_name is not None else None,
            self.registry_model_id,
            self.instances,
            min(self.attempts, 32767),
            self.status,
            self.error_cause[:64] if self.error_cause else None,
            self.prompt_tokens,
            self.completion_tokens,
            self.total_tokens,
            _ms(self.first_byte - self.started) if self.first_byte is not None else None,
            _ms(ended - self.started),
            self.stream,
            replica,
            _text(self.request_body),
            _text(bytes(self.response_body)) if self.response_body is not None else None,
        )
