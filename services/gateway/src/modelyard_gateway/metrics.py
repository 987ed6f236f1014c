"""Prometheus metrics of proxied traffic, per workspace, group and instance."""

from __future__ import annotations

from functools import lru_cache

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

REQUESTS = Counter(
    "modelyard_gateway_requests",
    "Proxied requests by group, serving instance (or none) and outcome.",
    ["workspace", "group", "instance", "outcome"],
)
FAILURES = Counter(
    "modelyard_gateway_upstream_failures",
    "Failed upstream attempts by group, instance and cause.",
    ["workspace", "group", "instance", "cause"],
)
SKIPS = Counter(
    "modelyard_gateway_instance_skips",
    "Instances skipped without a request (cooldown, down, at capacity).",
    ["workspace", "group", "instance", "reason"],
)
LATENCY = Histogram(
    "modelyard_gateway_upstream_latency_seconds",
    "Time from sending to an upstream until its full answer (non-streaming).",
    ["workspace", "group", "instance"],
    buckets=LATENCY_BUCKETS,
)
TTFB = Histogram(
    "modelyard_gateway_upstream_ttfb_seconds",
    "Time from sending to an upstream until the first byte of its stream.",
    ["workspace", "group", "instance"],
    buckets=LATENCY_BUCKETS,
)


@lru_cache(maxsize=4096)
def requests(workspace: str, group: str, instance: str, outcome: str) -> Counter:
    """Return the request counter child of one workspace, group, instance and outcome."""
    return REQUESTS.labels(workspace, group, instance, outcome)


@lru_cache(maxsize=4096)
def failures(workspace: str, group: str, instance: str, cause: str) -> Counter:
    """Return the failure counter child of one workspace, group, instance and cause."""
    return FAILURES.labels(workspace, group, instance, cause)


@lru_cache(maxsize=4096)
def skips(workspace: str, group: str, instance: str, reason: str) -> Counter:
    """Return the skip counter child of one workspace, group, instance and reason."""
    return SKIPS.labels(workspace, group, instance, reason)


@lru_cache(maxsize=4096)
def latency(workspace: str, group: str, instance: str) -> Histogram:
    """Return the latency histogram child of one workspace, group and instance."""
    return LATENCY.labels(workspace, group, instance)


@lru_cache(maxsize=4096)
def ttfb(workspace: str, group: str, instance: str) -> Histogram:
    """Return the time-to-first-byte histogram child of one workspace, group and instance."""
    return TTFB.labels(workspace, group, instance)
