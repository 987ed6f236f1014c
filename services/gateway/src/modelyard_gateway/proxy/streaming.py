"""Relaying an upstream's server-sent events to the client, cut on event boundaries.

A failure after the first byte ends the stream with an SSE error event (never a silent cut); a
client that goes away cancels the relay at once, so the upstream connection is dropped.
"""

from __future__ import annotations

import asyncio
import time

import aiohttp
import orjson

from modelyard_gateway import metrics
from modelyard_gateway.limits.meter import NOTHING, Admission
from modelyard_gateway.proxy.schemas import error_body
from modelyard_gateway.proxy.service import StreamAnswer
from modelyard_gateway.proxy.wire import (
    ATTEMPTS,
    INSTANCE,
    SSE_HEADERS,
    Receive,
    Send,
    policy_headers,
)
from modelyard_gateway.requestlog.record import RequestRecord
from modelyard_gateway.routing.catalog import GroupRoute
from modelyard_gateway.routing.fastclient import BoundReached
from modelyard_gateway.routing.health import HealthBoard
from modelyard_gateway.routing.upstream import UpstreamResponse
from modelyard_gateway.usage.service import StreamUsage, UsageRecorder


def _event_boundary(data: bytes) -> int:
    """Return the end of the last complete SSE event in `data`, or 0."""
    lf = data.rfind(b"\n\n")
    crlf = data.rfind(b"\r\n\r\n")
    return max(lf + 2 if lf >= 0 else 0, crlf + 4 if crlf >= 0 else 0)


def first_event_model(chunk: bytes) -> str | None:
    """Return the `model` the stream's first complete data event names (OpenAI's chunks each
    carry it), or None."""
    for line in chunk[: _event_boundary(chunk)].splitlines():
        line = line.strip()
        if not line.startswith(b"data:") or b'"model"' not in line:
            continue
        try:
            model = orjson.loads(line[5:]).get("model")
        except (orjson.JSONDecodeError, AttributeError):
            return None
        return model[:200] if isinstance(model, str) else None
    return None


class StreamRelay:
    """Relays answered streams; shares the outcome (health board) and counts usage."""

    def __init__(self, board: HealthBoard, usage: UsageRecorder) -> None:
        self.board = board
        self.usage = usage

    async def relay(
        self,
        group: GroupRoute,
        answer: StreamAnswer,
        receive: Receive,
        send: Send,
        admission: Admission = NOTHING,
        record: RequestRecord | None = None,
    ) -> None:
        """Relay the stream to the client until it ends, fails or the client leaves."""
        # The stream is pumped in this task; a watcher cancels it when the client goes away, so
        # the upstream connection is dropped at once (uvicorn's send() ignores a gone client).
        relay = asyncio.current_task()
        assert relay is not None
        progress = _RelayProgress()
        watcher = asyncio.ensure_future(_watch_disconnect(receive, relay, progress))
        try:
            await self._pump(group, answer, send, progress, admission, record)
        except asyncio.CancelledError:
            if not progress.client_gone:
                raise
            relay.uncancel()
            answer.response.close()
            self.board.abandoned(answer.ticket)
            metrics.requests(
                group.workspace, group.name, answer.instance.name, "client_closed"
            ).inc()
            self.usage.record(group, error=False)  # the client left: not the model's error
            if record is not None:
                record.error_cause = "client_closed"
        finally:
            progress.finished = True
            watcher.cancel()

    async def _pump(
        self,
        group: GroupRoute,
        answer: StreamAnswer,
        send: Send,
        progress: _RelayProgress,
        admission: Admission,
        record: RequestRecord | None = None,
    ) -> None:
        headers = [
            *SSE_HEADERS,
            (INSTANCE, answer.instance.name.encode()),
            (ATTEMPTS, str(answer.attempts).encode()),
            *policy_headers(group),
            *admission.headers(),
        ]
        if not answer.content_type.startswith("text/event-stream"):
            headers[0] = (b"content-type", answer.content_type.encode("latin-1"))
        await send({"type": "http.response.start", "status": answer.status, "headers": headers})
        board = self.board
        inst = answer.instance
        upstream = answer.response
        pending = answer.first_chunk
        # The usage a stream reports goes to the request log too, whatever the group.
        tap = StreamUsage()
        tap.feed(pending)
        cut = _event_boundary(pending)
        if cut:
            await send({"type": "http.response.body", "body": pending[:cut], "more_body": True})
            pending = pending[cut:]
        copying = time.perf_counter()
        try:
            # The upstream's reads are bounded by the request's deadline (`until`).
            pending = await _copy(upstream, send, pending, tap)
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            answer.waited += time.perf_counter() - copying
            progress.finished = True
            upstream.close()
            if isinstance(exc, BoundReached):
                reason, cause = "the request's deadline ran out", "deadline_exceeded"
            elif isinstance(exc, TimeoutError):
                reason = f"the upstream sent nothing for {answer.idle_timeout:g}s"
                cause = "stream_timeout"
            else:
                reason, cause = "the upstream stream was cut off", "stream_dropped"
            if cause != "deadline_exceeded":
                board.failed(answer.ticket, reason, code=cause)
            else:
                board.abandoned(answer.ticket)
            metrics.failures(group.workspace, group.name, inst.name, cause).inc()
            metrics.requests(group.workspace, group.name, inst.name, "stream_failed").inc()
            self.usage.record(group, error=True)
            if record is not None:
                record.error_cause = "stream_interrupted"
            event = error_body(
                f"Instance '{inst.name}' failed mid-stream: {reason}.",
                type_="upstream_error",
                code="stream_interrupted",
            )
            await send(
                {
                    "type": "http.response.body",
                    "body": b"data: " + event + b"\n\n",
                    "more_body": False,
                }
            )
            return
        except asyncio.CancelledError:
            answer.waited += time.perf_counter() - copying
            raise
        answer.waited += time.perf_counter() - copying
        progress.finished = True
        upstream.release()
        board.succeeded(answer.ticket)
        metrics.requests(group.workspace, group.name, inst.name, "ok").inc()
        usage = tap.usage()
        self.usage.record(group, error=False, usage=usage)
        admission.spend(usage)
        if record is not None:
            record.usage(usage)
        await send({"type": "http.response.body", "body": pending, "more_body": False})


async def _copy(
    upstream: UpstreamResponse, send: Send, pending: bytes, tap: StreamUsage | None = None
) -> bytes:
    """Relay the upstream's chunks cut on SSE event boundaries; return the unsent tail."""
    while chunk := await upstream.next_chunk():
        data = pending + chunk if pending else chunk
        if tap is not None:
            tap.feed(data)
        cut = _event_boundary(data)
        if cut == len(data):
            pending = b""
            await send({"type": "http.response.body", "body": data, "more_body": True})
        elif cut:
            pending = data[cut:]
            await send({"type": "http.response.body", "body": data[:cut], "more_body": True})
        else:
            pending = data
    return pending


class _RelayProgress:
    __slots__ = ("client_gone", "finished")

    def __init__(self) -> None:
        self.client_gone = False
        self.finished = False


async def _watch_disconnect(
    receive: Receive, relay: asyncio.Task[object], progress: _RelayProgress
) -> None:
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            break
    if not progress.finished:
        progress.client_gone = True
        relay.cancel()
