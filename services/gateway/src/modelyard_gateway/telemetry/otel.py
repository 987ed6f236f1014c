"""The OpenTelemetry SDK at work: a SERVER span per client request, a CLIENT span per upstream
attempt, and the GenAI client metrics, all exported over OTLP/HTTP by background threads.

Span and metric names and attributes follow the OpenTelemetry GenAI semantic conventions; the
group a client names is `gen_ai.request.model`, the model an instance answered with (when it
says) `gen_ai.response.model`. Only names, counts, codes and addresses go in: never a prompt or
an answer.
"""

from __future__ import annotations

import time
from typing import Any

from opentelemetry.context import Context
from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.sdk.trace.sampling import ParentBased, TraceIdRatioBased
from opentelemetry.trace import (
    NonRecordingSpan,
    Span,
    SpanContext,
    SpanKind,
    Status,
    StatusCode,
    TraceFlags,
    set_span_in_context,
)

from modelyard_gateway.requestlog.record import RequestRecord
from modelyard_gateway.telemetry import Exporting

# The GenAI operation of each OpenAI-compatible path (gen_ai.operation.name).
OPERATIONS = {
    "/v1/chat/completions": "chat",
    "/v1/completions": "text_completion",
    "/v1/embeddings": "embeddings",
}
# Bucket boundaries the GenAI semantic conventions advise.
TOKEN_BUCKETS = [1, 4, 16, 64, 256, 1024, 4096, 16384, 65536, 262144, 1048576, 4194304]
DURATION_BUCKETS = [0.01, 0.02, 0.04, 0.08, 0.16, 0.32, 0.64, 1.28, 2.56, 5.12, 10.24, 20.48]
FIRST_CHUNK_BUCKETS = [0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0]

_HEX = frozenset("0123456789abcdef")


def remote_parent(headers: list[tuple[bytes, bytes]]) -> Context | None:
    """Return the context of a valid W3C `traceparent` request header, or None."""
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
        parent = SpanContext(trace_id, span_id, True, TraceFlags(int(parts[3], 16) & 1))
        return set_span_in_context(NonRecordingSpan(parent))
    return None


def traceparent(span: Span) -> str:
    """Return the W3C `traceparent` value that makes `span` the parent of the upstream's work."""
    ctx = span.get_span_context()
    return f"00-{ctx.trace_id:032x}-{ctx.span_id:016x}-{int(ctx.trace_flags):02x}"


class Telemetry:
    """One replica's tracer and GenAI meters, with their exporters."""

    def __init__(self, target: Exporting) -> None:
        self.target = target
        resource = Resource.create({"service.name": target.service_name})
        self.tracer_provider = TracerProvider(
            resource=resource, sampler=ParentBased(TraceIdRatioBased(target.sample_ratio))
        )
        self.tracer_provider.add_span_processor(
            BatchSpanProcessor(OTLPSpanExporter(endpoint=target.traces_url))
        )
        self.tracer = self.tracer_provider.get_tracer("modelyard_gateway")
        self.meter_provider: MeterProvider | None = None
        self.token_usage: Any = None
        self.duration: Any = None
        self.first_chunk: Any = None
        if target.metrics_url is None:
            return
        reader = PeriodicExportingMetricReader(
            OTLPMetricExporter(endpoint=target.metrics_url),
            export_interval_millis=target.metrics_interval_s * 1000,
        )
        self.meter_provider = MeterProvider(resource=resource, metric_readers=[reader])
        meter = self.meter_provider.get_meter("modelyard_gateway")
        self.token_usage = meter.create_histogram(
            "gen_ai.client.token.usage",
            unit="{token}",
            description="Tokens used per request, by token type (input, output).",
            explicit_bucket_boundaries_advisory=TOKEN_BUCKETS,
        )
        self.duration = meter.create_histogram(
            "gen_ai.client.operation.duration",
            unit="s",
            description="Duration of client requests through the gateway, failover included.",
            explicit_bucket_boundaries_advisory=DURATION_BUCKETS,
        )
        self.first_chunk = meter.create_histogram(
            "gen_ai.client.operation.time_to_first_chunk",
            unit="s",
            description="Time from a streaming request's arrival to its first chunk.",
            explicit_bucket_boundaries_advisory=FIRST_CHUNK_BUCKETS,
        )

    def request(self, scope: dict[str, Any] | Any, path: str) -> RequestTrace:
        """Return the trace of a client request that starts now."""
        return RequestTrace(self, OPERATIONS[path], remote_parent(scope["headers"]))

    def flush(self, timeout_s: float = 10.0) -> None:
        """Export what is buffered now (blocking: call it off the event loop)."""
        millis = int(timeout_s * 1000)
        self.tracer_provider.force_flush(millis)
        if self.meter_provider is not None:
            self.meter_provider.force_flush(millis)

    def shutdown(self) -> None:
        """Export what is left and stop the exporters (blocking: call it off the event loop)."""
        self.tracer_provider.shutdown()
        if self.meter_provider is not None:
            self.meter_provider.shutdown()


class RequestTrace:
    """The spans of one client request; the proxy reports the points the request passes."""

    __slots__ = (
        "_attempt",
        "_parent",
        "_span",
        "_telemetry",
        "first_chunk_s",
        "model",
        "operation",
        "response_model",
        "started_ns",
    )

    def __init__(self, telemetry: Telemetry, operation: str, parent: Context | None) -> None:
        self._telemetry = telemetry
        self.operation = operation
        self._parent = parent
        self.started_ns = time.time_ns()
        self._span: Span | None = None
        self._attempt: Span | None = None
        self.model: str | None = None  # the group asked for, once the proxy found it
        self.response_model: str | None = None
        self.first_chunk_s: float | None = None  # a stream's first chunk, after the start

    def _server_span(self, model: str | None = None) -> Span:
        # Started when first needed (a first attempt, or the end) and dated from the request's
        # arrival, so it is named once.
        span = self._span
        if span is None:
            model = self.model or model
            span = self._span = self._telemetry.tracer.start_span(
                f"{self.operation} {model}" if model else self.operation,
                self._parent,
                SpanKind.SERVER,
                start_time=self.started_ns,
            )
        return span

    def refused(self, status: int, code: str | None) -> None:
        """End the span of a request refused before its key was known (no workspace)."""
        span = self._server_span()
        span.set_attributes(
            {
                "gen_ai.operation.name": self.operation,
                "http.response.status_code": status,
                "error.type": code or str(status),
            }
        )
        span.end()

    def attempt(self, instance: str, model: str, host: str, port: int | None) -> str:
        """Start an attempt's CLIENT span; return the traceparent to send with it."""
        self._end_attempt("abandoned", None)
        attributes: dict[str, Any] = {
            "gen_ai.operation.name": self.operation,
            "gen_ai.request.model": model,
            "server.address": host,
            "modelyard.instance": instance,
        }
        if port is not None:
            attributes["server.port"] = port
        span = self._attempt = self._telemetry.tracer.start_span(
            f"{self.operation} {model}",
            set_span_in_context(self._server_span()),
            SpanKind.CLIENT,
            attributes,
        )
        return traceparent(span)

    def attempt_ended(self, outcome: str, status: int | None = None) -> None:
        """End the current attempt's span with its outcome (`ok` or a failure cause)."""
        self._end_attempt(outcome, status)

    def _end_attempt(self, outcome: str, status: int | None) -> None:
        span = self._attempt
        if span is None:
            return
        self._attempt = None
        if status is not None:
            span.set_attribute("http.response.status_code", status)
        span.set_attribute("modelyard.outcome", outcome)
        if outcome != "ok":
            span.set_attribute("error.type", outcome)
            span.set_status(Status(StatusCode.ERROR))
        span.end()

    def finish(self, record: RequestRecord) -> None:
        """End the request's spans and record its metrics from what the record learned."""
        status = record.status
        cause = record.error_cause
        ended = record.ended if record.ended is not None else time.perf_counter()
        if self._attempt is not None:  # a stream's attempt lasts as long as the stream
            self._end_attempt(cause or "ok" if status < 500 else cause or "error", status)
        group = record.group_name
        span = self._server_span(group)
        attributes: dict[str, Any] = {
            "gen_ai.operation.name": self.operation,
            "http.response.status_code": status,
            "modelyard.workspace": record.workspace,
            "modelyard.attempts": record.attempts,
        }
        if group is not None:
            attributes["gen_ai.request.model"] = group
            attributes["modelyard.group"] = group
        if self.response_model is not None:
            attributes["gen_ai.response.model"] = self.response_model
        if record.prompt_tokens is not None:
            attributes["gen_ai.usage.input_tokens"] = record.prompt_tokens
        if record.completion_tokens is not None:
            attributes["gen_ai.usage.output_tokens"] = record.completion_tokens
        failed = status >= 400 or cause is not None
        if failed:
            attributes["error.type"] = cause or str(status)
        span.set_attributes(attributes)
        if status >= 500 or (failed and status < 400):
            span.set_status(Status(StatusCode.ERROR))
        span.end()
        telemetry = self._telemetry
        if telemetry.token_usage is None:
            return
        measured: dict[str, Any] = {
            "gen_ai.operation.name": self.operation,
            "modelyard.workspace": record.workspace,
        }
        if group is not None:
            measured["gen_ai.request.model"] = group
            measured["modelyard.group"] = group
        if self.response_model is not None:
            measured["gen_ai.response.model"] = self.response_model
        if failed:
            telemetry.duration.record(
                ended - record.started, {**measured, "error.type": attributes["error.type"]}
            )
        else:
            telemetry.duration.record(ended - record.started, measured)
        if self.first_chunk_s is not None:
            telemetry.first_chunk.record(self.first_chunk_s, measured)
        if record.prompt_tokens is not None:
            telemetry.token_usage.record(
                record.prompt_tokens, {**measured, "gen_ai.token.type": "input"}
            )
        if record.completion_tokens is not None:
            telemetry.token_usage.record(
                record.completion_tokens, {**measured, "gen_ai.token.type": "output"}
            )
