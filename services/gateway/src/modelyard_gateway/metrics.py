"""Prometheus metrics of proxied traffic, per workspace, group and instance."""

from __future__ import annotations

from collections.abc import Callable
from functools import lru_cache
from typing import TypeVar

from prometheus_client import Counter, Histogram

LATENCY_BUCKETS = (
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
    30.0,
    60.0,
)

# The gateway's own time per request is a fraction of a millisecond: finer buckets there.
ADDED_BUCKETS = (
    0.0001,
    0.0002,
    0.0003,
    0.0005,
    0.00075,
    0.001,
    0.0015,
    0.002,
    0.003,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.5,
)
FIRST_BYTE_BUCKETS = (0.0005, *LATENCY_BUCKETS)

M = TypeVar("M", Counter, Histogram)


def per_instance(metric: M) -> Callable[..., M]:
    """Return `metric`'s child lookup by workspace, group, instance (and a cause), kept cached.

    The hot path asks for the same few children on every request: the cache saves `labels`'
    lock and dictionary work.
    """
    return lru_cache(maxsize=4096)(metric.labels)


_PER_INSTANCE = ["workspace", "group", "instance"]

requests = per_instance(
    Counter(
        "modelyard_gateway_requests",
        "Proxied requests by group, serving instance (or none) and outcome.",
        [*_PER_INSTANCE, "outcome"],
    )
)
failures = per_instance(
    Counter(
        "modelyard_gateway_upstream_failures",
        "Failed upstream attempts by group, instance and cause.",
        [*_PER_INSTANCE, "cause"],
    )
)
skips = per_instance(
    Counter(
        "modelyard_gateway_instance_skips",
        "Instances skipped without a request (cooldown, down, at capacity).",
        [*_PER_INSTANCE, "reason"],
    )
)
latency = per_instance(
    Histogram(
        "modelyard_gateway_upstream_latency_seconds",
        "Time from sending to an upstream until its full answer (non-streaming).",
        _PER_INSTANCE,
        buckets=LATENCY_BUCKETS,
    )
)
ttfb = per_instance(
    Histogram(
        "modelyard_gateway_upstream_ttfb_seconds",
        "Time from sending to an upstream until the first byte of its stream.",
        _PER_INSTANCE,
        buckets=LATENCY_BUCKETS,
    )
)
_PER_GROUP = ["workspace", "group"]
first_byte = lru_cache(maxsize=4096)(
    Histogram(
        "modelyard_gateway_first_byte_seconds",
        "Time from a client request's arrival until the first bytes of its answer arrived from "
        "the instance that served it (a stream's first chunk, an answer's headers), failover "
        "included.",
        _PER_GROUP,
        buckets=FIRST_BYTE_BUCKETS,
    ).labels
)
added = lru_cache(maxsize=4096)(
    Histogram(
        "modelyard_gateway_added_seconds",
        "The gateway's own time per answered request: its whole time minus the time spent "
        "waiting on upstreams (a stream counts as upstream time from its first chunk on).",
        _PER_GROUP,
        buckets=ADDED_BUCKETS,
    ).labels
)
limit_leases = lru_cache(maxsize=64)(
    Counter(
        "modelyard_gateway_limit_leases",
        "Chunks of a requests-per-minute window this replica leased from the shared counter.",
        ["measure"],
    ).labels
)
limit_refusals = lru_cache(maxsize=4096)(
    Counter(
        "modelyard_gateway_limit_refusals",
        "Requests refused with 429 by a limit, per workspace, whose limit (key or workspace) "
        "and measure.",
        ["workspace", "scope", "measure"],
    ).labels
)

otel_spans_dropped = Counter(
    "modelyard_gateway_otel_spans_dropped",
    "OpenTelemetry spans this replica dropped: the OTLP endpoint failed, or too many waited.",
)
request_log_written = Counter(
    "modelyard_gateway_request_log_written",
    "Request log records this replica wrote to the database.",
)
request_log_dropped = Counter(
    "modelyard_gateway_request_log_dropped",
    "Request log records this replica dropped: its buffer was full (database unreachable).",
)
