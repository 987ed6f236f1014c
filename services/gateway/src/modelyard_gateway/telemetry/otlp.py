"""OTLP protobuf, written directly: the few messages the gateway exports, encoded field by field.

The SDK's span objects and encoder cost more CPU per request than the whole proxy path (a
profile under load: a third of the process's time); spans here are a handful of numbers and
strings kept until export, then encoded by concatenating bytes, with every constant piece
(attribute keys, per-group values) encoded once. Field numbers are those of
opentelemetry-proto (`opentelemetry/proto/{collector,trace,metrics,common}/v1`); the tests decode
what is sent with the official classes.
"""

from __future__ import annotations

import struct
from collections.abc import Iterable
from functools import lru_cache

# Span.kind
SERVER = 2
CLIENT = 3
# Span.flags: the trace flags, and whether the parent is known to be remote.
HAS_IS_REMOTE = 0x100
IS_REMOTE = 0x200
# AggregationTemporality
CUMULATIVE = 2

_pack_q = struct.Struct("<Q").pack
_pack_d = struct.Struct("<d").pack
_pack_i = struct.Struct("<I").pack
STATUS_ERROR = b"\x7a\x02\x18\x02"  # Span.status (15) = Status{code (3): ERROR (2)}


def varint(value: int) -> bytes:
    """Return `value` (>= 0; a negative one as int64 two's complement) as a protobuf varint."""
    if value < 0:
        value += 1 << 64
    if value < 0x80:
        return bytes((value,))
    out = bytearray()
    while value >= 0x80:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def field(number: int, payload: bytes) -> bytes:
    """Return a length-delimited field (a string, bytes or an embedded message)."""
    return varint(number << 3 | 2) + varint(len(payload)) + payload


def any_value(value: str | bool | int | float) -> bytes:
    """Return an AnyValue message."""
    if isinstance(value, bool):
        return b"\x10\x01" if value else b"\x10\x00"
    if isinstance(value, int):
        return b"\x18" + varint(value)
    if isinstance(value, float):
        return b"\x21" + _pack_d(value)
    return field(1, value.encode())


def key_value(key: str, value: str | bool | int | float) -> bytes:
    """Return a KeyValue message."""
    return field(1, key.encode()) + field(2, any_value(value))


@lru_cache(maxsize=8192)
def attribute(key: str, value: str | bool | int | float, number: int = 9) -> bytes:
    """Return one attribute as field `number` of its message (9 in a Span), cached."""
    return field(number, key_value(key, value))


def number_attribute(key: str, value: int, number: int = 9) -> bytes:
    """Return an int attribute (not cached: counts vary)."""
    if 0 <= value < 256:
        return attribute(key, value, number)
    return field(number, key_value(key, value))


def span(
    *,
    trace_id: bytes,
    span_id: int,
    parent_id: int,
    name: bytes,
    kind: int,
    start_ns: int,
    end_ns: int,
    attributes: Iterable[bytes],
    error: bool,
    flags: int,
) -> bytes:
    """Return a Span message; `name` is already encoded as field 5, attributes as fields 9."""
    parts = [b"\x0a\x10", trace_id, b"\x12\x08", span_id.to_bytes(8, "big")]
    if parent_id:
        parts += (b"\x22\x08", parent_id.to_bytes(8, "big"))
    parts += (
        name,
        b"\x30",
        bytes((kind,)),
        b"\x39",
        _pack_q(start_ns),
        b"\x41",
        _pack_q(max(end_ns, start_ns)),
        *attributes,
    )
    if error:
        parts.append(STATUS_ERROR)
    parts += (b"\x85\x01", _pack_i(flags))  # field 16, fixed32
    return b"".join(parts)


def resource(attributes: dict[str, str]) -> bytes:
    """Return a Resource message."""
    return b"".join(attribute(k, v, 1) for k, v in attributes.items())


def scope(name: str, version: str) -> bytes:
    """Return an InstrumentationScope message."""
    return field(1, name.encode()) + field(2, version.encode())


def traces_request(resource_message: bytes, scope_message: bytes, spans: list[bytes]) -> bytes:
    """Return an ExportTraceServiceRequest holding `spans`."""
    scope_spans = field(1, scope_message) + b"".join([field(2, s) for s in spans])
    resource_spans = field(1, resource_message) + field(2, scope_spans)
    return field(1, resource_spans)


def histogram_point(
    *,
    attributes: bytes,
    start_ns: int,
    now_ns: int,
    count: int,
    total: float,
    buckets: list[int],
    bounds: bytes,
    low: float,
    high: float,
) -> bytes:
    """Return a HistogramDataPoint (cumulative); `bounds` is field 7 already encoded."""
    packed = b"".join(_pack_q(c) for c in buckets)
    return b"".join(
        (
            attributes,  # fields 9
            b"\x11",
            _pack_q(start_ns),
            b"\x19",
            _pack_q(now_ns),
            b"\x21",
            _pack_q(count),
            b"\x29",
            _pack_d(total),
            field(6, packed),
            bounds,
            b"\x59",
            _pack_d(low),
            b"\x61",
            _pack_d(high),
        )
    )


def bounds_field(bounds: Iterable[float]) -> bytes:
    """Return HistogramDataPoint.explicit_bounds (field 7, packed doubles)."""
    return field(7, b"".join(_pack_d(b) for b in bounds))


def histogram_metric(name: str, description: str, unit: str, points: list[bytes]) -> bytes:
    """Return a Metric message holding a cumulative histogram."""
    histogram = b"".join([field(1, p) for p in points]) + b"\x10" + varint(CUMULATIVE)
    return (
        field(1, name.encode())
        + field(2, description.encode())
        + field(3, unit.encode())
        + field(9, histogram)
    )


def metrics_request(resource_message: bytes, scope_message: bytes, metrics: list[bytes]) -> bytes:
    """Return an ExportMetricsServiceRequest holding `metrics`."""
    scope_metrics = field(1, scope_message) + b"".join([field(2, m) for m in metrics])
    resource_metrics = field(1, resource_message) + field(2, scope_metrics)
    return field(1, resource_metrics)


@lru_cache(maxsize=4096)
def span_name(operation: str, model: str | None) -> bytes:
    """Return Span.name (field 5) `{operation} {model}`, as the GenAI conventions name spans."""
    return field(5, (f"{operation} {model}" if model else operation).encode())


def attribute_name(operation: str) -> bytes:
    """Return Span.name (field 5) of a request whose model is unknown."""
    return span_name(operation, None)
