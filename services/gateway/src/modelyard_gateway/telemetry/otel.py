"""OpenTelemetry at work: a SERVER span per client request, a CLIENT span per upstream attempt
and the GenAI client metrics, exported over OTLP/HTTP (protobuf) by a task of the replica's loop.

Span and metric names and attributes follow the OpenTelemetry GenAI semantic conventions; the
group a client names is `gen_ai.request.model`, the model an instance answered with (when it
says) `gen_ai.response.model`. Only names, counts, codes and addresses go in: never a prompt or
an answer.

A request does a few attribute writes here and, when it ends, has its spans encoded
(`otlp.py`: joined bytes, every constant piece encoded once); a task sends them in batches,
every `EXPORT_S` or once `BATCH` spans wait. What cannot be sent is dropped and logged, never
slowing requests; at most `QUEUE` spans wait for export.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import random
import time
from bisect import bisect_left
from collections.abc import Mapping
from functools import lru_cache
from typing import Any
from urllib.parse import unquote

import aiohttp

from modelyard_gateway import metrics
from modelyard_gateway.requestlog.record import RequestRecord
from modelyard_gateway.telemetry import Exporting, otlp

log = logging.getLogger("modelyard.gateway.telemetry")

# The GenAI operation of each OpenAI-compatible path (gen_ai.operation.name).
OPERATIONS = {
    "/v1/chat/completions": "chat",
    "/v1/completions": "text_completion",
    "/v1/embeddings": "embeddings",
}
# Bucket boundaries the GenAI semantic conventions advise.
TOKEN_BUCKETS = (1, 4, 16, 64, 256, 1024, 4096, 16384, 65536, 262144, 1048576, 4194304)
DURATION_BUCKETS = (0.01, 0.02, 0.04, 0.08, 0.16, 0.32, 0.64, 1.28, 2.56, 5.12, 10.24, 20.48)
FIRST_CHUNK_BUCKETS = (0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 1, 2.5, 5)

EXPORT_S = 2.0  # how often finished spans leave (or sooner: BATCH of them wait)
BATCH = 2048  # spans per export
QUEUE = 50_000  # spans
EXPORT_TIMEOUT_S = 10.0
SCOPE = otlp.scope("modelyard_gateway", "0.1.0")
_HEX = frozenset("0123456789abcdef")
_MASK64 = (1 << 64) - 1
_getrandbits = random.getrandbits


def otlp_headers(environ: Mapping[str, str], signal: str) -> dict[str, str]:
    """Return the headers OTEL_EXPORTER_OTLP_HEADERS and its per-signal variable ask for."""
    headers: dict[str, str] = {}
    for name in ("OTEL_EXPORTER_OTLP_HEADERS", f"OTEL_EXPORTER_OTLP_{signal}_HEADERS"):
        for pair in environ.get(name, "").split(","):
            key, sep, value = pair.partition("=")
            if sep and key.strip():
                headers[unquote(key.strip())] = unquote(value.strip())
    return headers


def parse_traceparent(headers: list[tuple[bytes, bytes]]) -> tuple[int, int, int] | None:
    """Return (trace id, parent span id, trace flags) of a valid `traceparent` header."""
    for name, value in headers:
        if name != b"traceparent":
            continue
        text = value.decode("latin-1").strip().lower()
        parts = text.split("-")
        if (
            len(parts) < 4
            or len(parts[0]) != 2
            or parts[0] == "ff"
            or (parts[0] == "00" and len(parts) != 4)
            or len(parts[1]) != 32
            or len(parts[2]) != 16
            or len(parts[3]) != 2
            or not _HEX.issuperset(text.replace("-", ""))
        ):
            return None
        trace_id, span_id = int(parts[1], 16), int(parts[2], 16)
        if not trace_id or not span_id:
            return None
        return trace_id, span_id, int(parts[3], 16)
    return None


class _Series:
    """One histogram's cumulative counts for one set of attributes."""

    __slots__ = ("buckets", "count", "high", "low", "total")

    def __init__(self, size: int) -> None:
        self.buckets = [0] * (size + 1)
        self.count = 0
        self.total = 0.0
        self.low = float("inf")
        self.high = float("-inf")

    def add(self, value: float, bounds: tuple[float, ...]) -> None:
        self.buckets[bisect_left(bounds, value)] += 1
        self.count += 1
        self.total += value
        if value < self.low:
            self.low = value
        if value > self.high:
            self.high = value


class Metric:
    """A cumulative histogram's name, unit, description and bucket bounds."""

    def __init__(self, name: str, unit: str, description: str, bounds: tuple[float, ...]) -> None:
        self.name, self.unit, self.description = name, unit, description
        self.bounds = tuple(float(b) for b in bounds)
        self.bounds_field = otlp.bounds_field(self.bounds)

    def encode(self, series: list[tuple[bytes, _Series]], start_ns: int, now_ns: int) -> bytes:
        """Return the Metric message of `series` (encoded attributes, counts)."""
        points = [
            otlp.histogram_point(
                attributes=attributes,
                start_ns=start_ns,
                now_ns=now_ns,
                count=s.count,
                total=s.total,
                buckets=s.buckets,
                bounds=self.bounds_field,
                low=s.low,
                high=s.high,
            )
            for attributes, s in series
            if s.count
        ]
        return otlp.histogram_metric(self.name, self.description, self.unit, points)


TOKEN_USAGE = Metric(
    "gen_ai.client.token.usage",
    "{token}",
    "Tokens used per request, by token type (input, output).",
    TOKEN_BUCKETS,
)
DURATION = Metric(
    "gen_ai.client.operation.duration",
    "s",
    "Duration of client requests through the gateway, failover included.",
    DURATION_BUCKETS,
)
FIRST_CHUNK = Metric(
    "gen_ai.client.operation.time_to_first_chunk",
    "s",
    "Time from a streaming request's arrival to its first chunk from the instance.",
    FIRST_CHUNK_BUCKETS,
)
_INPUT = otlp.attribute("gen_ai.token.type", "input")
_OUTPUT = otlp.attribute("gen_ai.token.type", "output")


class Measures:
    """The histograms of the requests that share one set of attributes (one lookup each)."""

    __slots__ = ("attributes", "duration", "first_chunk", "input", "output")

    def __init__(
        self,
        operation: str,
        group: str | None,
        response_model: str | None,
        workspace: str,
        error: str | None,
    ) -> None:
        a = otlp.attribute
        self.attributes = (
            a("gen_ai.operation.name", operation)
            + a("modelyard.workspace", workspace)
            + _answer_attributes(group, response_model, error)
        )
        self.duration = _Series(len(DURATION.bounds))
        self.first_chunk = _Series(len(FIRST_CHUNK.bounds))
        self.input = _Series(len(TOKEN_USAGE.bounds))
        self.output = _Series(len(TOKEN_USAGE.bounds))


class Telemetry:
    """One replica's traces and GenAI metrics, and the task that exports them."""

    def __init__(self, target: Exporting, environ: Mapping[str, str] | None = None) -> None:
        env = os.environ if environ is None else environ
        self.target = target
        self.sample_bound = int(target.sample_ratio * (1 << 64))
        self.resource = otlp.resource({"service.name": target.service_name})
        self.trace_headers = {
            **otlp_headers(env, "TRACES"),
            "Content-Type": "application/x-protobuf",
        }
        self.metric_headers = {
            **otlp_headers(env, "METRICS"),
            "Content-Type": "application/x-protobuf",
        }
        # Spans of finished requests, encoded: bytes are no work for the garbage collector,
        # where thousands of waiting request objects made its collections a cost per request.
        self.finished: list[bytes] = []
        self.dropped = 0  # spans
        self._failing: set[str] = set()
        self.started_ns = time.time_ns()
        self.measures: dict[tuple[Any, ...], Measures] = {}
        self._wake = asyncio.Event()
        self._stopping = False
        self._task: asyncio.Task[None] | None = None
        self._metrics_task: asyncio.Task[None] | None = None
        self._session: aiohttp.ClientSession | None = None
        self._lock: asyncio.Lock | None = None
        self.loop: asyncio.AbstractEventLoop | None = None

    def request(self, scope: Mapping[str, Any], path: str) -> RequestTrace:
        """Return the trace of a client request that starts now."""
        return RequestTrace(self, OPERATIONS[path], scope["headers"])

    def ended(self, trace: RequestTrace) -> None:
        """Keep a finished, sampled request's spans for the next export (dropped when the queue
        is full)."""
        finished = self.finished
        if len(finished) >= QUEUE:
            self._drop(2)  # about a request's worth
            return
        trace.encode(finished)
        if len(finished) >= BATCH:
            self._wake.set()

    # The export task

    def start(self) -> None:
        """Export in background tasks of the running loop."""
        self.loop = asyncio.get_running_loop()
        self._lock = asyncio.Lock()
        self._session = aiohttp.ClientSession(
            timeout=aiohttp.ClientTimeout(total=EXPORT_TIMEOUT_S),
            connector=aiohttp.TCPConnector(limit=2),
        )
        self._task = asyncio.create_task(self._export_traces(), name="gateway-otel-traces")
        if self.target.metrics_url is not None:
            self._metrics_task = asyncio.create_task(
                self._export_metrics(), name="gateway-otel-metrics"
            )

    async def _export_traces(self) -> None:
        while not self._stopping:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), EXPORT_S)
            self._wake.clear()
            await self.export_traces()

    async def _export_metrics(self) -> None:
        while not self._stopping:
            await asyncio.sleep(self.target.metrics_interval_s)
            await self.export_metrics()

    async def _post(self, url: str, body: bytes, headers: dict[str, str], what: str) -> bool:
        assert self._session is not None
        try:
            async with self._session.post(url, data=body, headers=headers) as resp:
                await resp.read()
                if resp.status < 300:
                    if what in self._failing:
                        self._failing.discard(what)
                        log.info("exporting %s over OTLP works again", what)
                    return True
                problem = f"HTTP {resp.status}"
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            problem = str(exc) or type(exc).__name__
        if what not in self._failing:  # once per outage, not every interval
            self._failing.add(what)
            log.warning("exporting %s over OTLP failed (dropped until it works): %s", what, problem)
        return False

    async def export_traces(self) -> int:
        """Send the spans of every finished request now; return how many spans."""
        assert self._lock is not None
        async with self._lock:
            sent = 0
            # Only what waits now (spans finished meanwhile go next time): chasing them would
            # post a trickle of small exports for as long as traffic lasts.
            due = len(self.finished)
            while due > 0 and self.finished:
                spans = self.finished[: min(BATCH, due)]
                del self.finished[: len(spans)]
                due -= len(spans)
                body = otlp.traces_request(self.resource, SCOPE, spans)
                if not await self._post(self.target.traces_url, body, self.trace_headers, "spans"):
                    # The collector is away: what waits goes too (a stop never waits on it for
                    # each batch), and the next interval tries again with new spans.
                    self._drop(len(spans) + len(self.finished))
                    self.finished.clear()
                    break
                sent += len(spans)
            return sent

    def _drop(self, count: int) -> None:
        self.dropped += count
        metrics.otel_spans_dropped.inc(count)

    async def export_metrics(self) -> bool:
        """Send every metric's cumulative state now; return whether it was accepted."""
        url = self.target.metrics_url
        if url is None:
            return False
        now = time.time_ns()
        measures = list(self.measures.values())
        if not measures:
            return True
        start = self.started_ns
        tokens = [(m.attributes + _INPUT, m.input) for m in measures]
        tokens += [(m.attributes + _OUTPUT, m.output) for m in measures]
        metrics = [
            TOKEN_USAGE.encode(tokens, start, now),
            DURATION.encode([(m.attributes, m.duration) for m in measures], start, now),
            FIRST_CHUNK.encode([(m.attributes, m.first_chunk) for m in measures], start, now),
        ]
        body = otlp.metrics_request(self.resource, SCOPE, metrics)
        return await self._post(url, body, self.metric_headers, "metrics")

    async def flush(self) -> None:
        """Export what waits now: spans, then metrics."""
        await self.export_traces()
        await self.export_metrics()

    async def stop(self) -> None:
        """Export what is left (a graceful stop), then stop the tasks and close the client."""
        self._stopping = True
        for task in (self._task, self._metrics_task):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        if self._session is None:
            return
        try:
            await self.flush()
        finally:
            await self._session.close()


@lru_cache(maxsize=4096)
def _request_attributes(
    operation: str,
    workspace: str,
    group: str | None,
    response_model: str | None,
    status: int,
    attempts: int,
    error: str | None,
) -> bytes:
    """Return a request span's attributes but its token counts, encoded (most requests to a
    group share them all)."""
    a, n = otlp.attribute, otlp.number_attribute
    return (
        a("gen_ai.operation.name", operation)
        + a("modelyard.workspace", workspace)
        + n("http.response.status_code", status)
        + n("modelyard.attempts", attempts)
        + _answer_attributes(group, response_model, error)
    )


def _answer_attributes(group: str | None, response_model: str | None, error: str | None) -> bytes:
    """Return the attributes a request's metrics and its span share about what it asked for and
    got, encoded (each only when known)."""
    a = otlp.attribute
    encoded = b""
    if group is not None:
        encoded += a("gen_ai.request.model", group) + a("modelyard.group", group)
    if response_model is not None:
        encoded += a("gen_ai.response.model", response_model)
    if error is not None:
        encoded += a("error.type", error)
    return encoded


@lru_cache(maxsize=4096)
def _attempt_attributes(
    operation: str,
    model: str,
    host: str,
    port: int | None,
    instance: str,
    outcome: str,
    status: int | None,
) -> bytes:
    """Return an attempt span's attributes, encoded (shared by the attempts like it)."""
    a, n = otlp.attribute, otlp.number_attribute
    shared = (
        a("gen_ai.operation.name", operation)
        + a("gen_ai.request.model", model)
        + a("server.address", host)
        + a("modelyard.instance", instance)
        + a("modelyard.outcome", outcome)
    )
    if port is not None:
        shared += a("server.port", port)
    if status is not None:
        shared += n("http.response.status_code", status)
    if outcome != "ok":
        shared += a("error.type", outcome)
    return shared


class RequestTrace:
    """The spans of one client request: ids now, everything else written down at the end."""

    __slots__ = (
        "_open",
        "_telemetry",
        "attempts",
        "end_ns",
        "first_chunk_s",
        "flags",
        "model",
        "operation",
        "parent_id",
        "record",
        "refusal",
        "response_model",
        "span_id",
        "started_ns",
        "trace_hex",
        "trace_id",
    )

    def __init__(
        self, telemetry: Telemetry, operation: str, headers: list[tuple[bytes, bytes]]
    ) -> None:
        self._telemetry = telemetry
        self.operation = operation
        self.started_ns = time.time_ns()
        parent = parse_traceparent(headers) if headers else None
        if parent is not None:  # its sampled flag decides, as a ParentBased sampler does
            self.trace_id, self.parent_id, flags = parent
            self.flags = (flags & 1) | otlp.HAS_IS_REMOTE | otlp.IS_REMOTE
        else:
            self.trace_id = _getrandbits(128) or 1
            self.parent_id = 0
            sampled = (self.trace_id & _MASK64) < telemetry.sample_bound
            self.flags = (1 if sampled else 0) | otlp.HAS_IS_REMOTE
        self.trace_hex = ""
        self.span_id = _getrandbits(64) or 1
        self.model: str | None = None  # the group asked for, once the proxy found it
        self.response_model: str | None = None
        self.first_chunk_s: float | None = None  # a stream's first chunk, after the start
        # Per attempt: [span id, start, end, instance, model, host, port, outcome, status]
        self.attempts: list[list[Any]] = []
        self._open: list[Any] | None = None
        self.record: RequestRecord | None = None
        self.refusal: tuple[int, str] | None = None
        self.end_ns = 0

    def attempt(self, instance: str, model: str, host: str, port: int | None) -> str:
        """Start an attempt's CLIENT span; return the traceparent to send with it."""
        self._end_attempt("abandoned", None)
        span_id = _getrandbits(64) or 1
        self._open = [span_id, time.time_ns(), 0, instance, model, host, port, None, None]
        self.attempts.append(self._open)
        if not self.trace_hex:
            self.trace_hex = f"00-{self.trace_id:032x}-"
        return f"{self.trace_hex}{span_id:016x}-{self.flags & 0xFF:02x}"

    def attempt_ended(self, outcome: str, status: int | None = None) -> None:
        """End the current attempt's span with its outcome (`ok` or a failure cause)."""
        self._end_attempt(outcome, status)

    def _end_attempt(self, outcome: str, status: int | None) -> None:
        attempt = self._open
        if attempt is not None:
            self._open = None
            attempt[2] = time.time_ns()
            attempt[7] = outcome
            attempt[8] = status

    def refused(self, status: int, code: str | None) -> None:
        """End a request refused before its key was known (no workspace)."""
        self.end_ns = time.time_ns()
        self.refusal = (status, code or str(status))
        if self.flags & 1:
            self._telemetry.ended(self)

    def finish(self, record: RequestRecord) -> None:
        """End the request (its record holds what it learned) and count its metrics."""
        self.end_ns = time.time_ns()
        self.record = record
        status, cause = record.status, record.error_cause
        if self._open is not None:  # a stream's attempt lasts as long as the stream
            self._end_attempt(cause or "ok" if status < 500 else cause or "error", status)
        telemetry = self._telemetry
        if self.flags & 1:
            telemetry.ended(self)
        if telemetry.target.metrics_url is None:
            return
        error = (cause or str(status)) if status >= 400 or cause is not None else None
        key = (self.operation, record.group_name, self.response_model, record.workspace, error)
        measures = telemetry.measures.get(key)
        if measures is None:
            measures = telemetry.measures[key] = Measures(*key)
        ended = record.ended if record.ended is not None else time.perf_counter()
        measures.duration.add(ended - record.started, DURATION.bounds)
        if self.first_chunk_s is not None:
            measures.first_chunk.add(self.first_chunk_s, FIRST_CHUNK.bounds)
        if record.prompt_tokens is not None:
            measures.input.add(record.prompt_tokens, TOKEN_USAGE.bounds)
        if record.completion_tokens is not None:
            measures.output.add(record.completion_tokens, TOKEN_USAGE.bounds)

    def encode(self, spans: list[bytes]) -> None:
        """Append the request's span and its attempts' spans, OTLP-encoded, to `spans`."""
        a, n = otlp.attribute, otlp.number_attribute
        operation = self.operation
        trace_id = self.trace_id.to_bytes(16, "big")
        flags = self.flags
        record = self.record
        if record is None:  # refused before its key was known
            status, refusal = self.refusal or (0, "unknown")
            attributes = [
                a("gen_ai.operation.name", operation),
                n("http.response.status_code", status),
                a("error.type", refusal),
            ]
            name = otlp.attribute_name(operation)
            failed = status >= 500
        else:
            status, cause = record.status, record.error_cause
            group = record.group_name
            error = (cause or str(status)) if status >= 400 or cause is not None else None
            attributes = [
                _request_attributes(
                    operation,
                    record.workspace,
                    group,
                    self.response_model,
                    status,
                    record.attempts,
                    error,
                )
            ]
            if record.prompt_tokens is not None:
                attributes.append(n("gen_ai.usage.input_tokens", record.prompt_tokens))
            if record.completion_tokens is not None:
                attributes.append(n("gen_ai.usage.output_tokens", record.completion_tokens))
            failed = status >= 500 or (error is not None and status < 400)
            name = otlp.span_name(operation, self.model or group)
        spans.append(
            otlp.span(
                trace_id=trace_id,
                span_id=self.span_id,
                parent_id=self.parent_id,
                name=name,
                kind=otlp.SERVER,
                start_ns=self.started_ns,
                end_ns=self.end_ns,
                attributes=attributes,
                error=failed,
                flags=flags,
            )
        )
        local = flags & ~otlp.IS_REMOTE
        for span_id, start, end, instance, model, host, port, outcome, code in self.attempts:
            outcome = outcome or "abandoned"
            attributes = [
                _attempt_attributes(operation, model, host, port, instance, outcome, code)
            ]
            failed = outcome != "ok"
            spans.append(
                otlp.span(
                    trace_id=trace_id,
                    span_id=span_id,
                    parent_id=self.span_id,
                    name=otlp.span_name(operation, model),
                    kind=otlp.CLIENT,
                    start_ns=start,
                    end_ns=end or self.end_ns,
                    attributes=attributes,
                    error=failed,
                    flags=local,
                )
            )
