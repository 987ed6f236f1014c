"""OpenTelemetry for the OpenAI-compatible API: GenAI spans and metrics over OTLP/HTTP.

Off unless an endpoint is configured: `configure` then returns None and the proxy makes no
telemetry call at all (one `is None` test per request and per attempt). Prompts and answers
never go into spans.

The wire format is OTLP/HTTP protobuf, as any OpenTelemetry collector takes it; the spans and
histograms are kept and encoded here (`otel.py`, `otlp.py`) rather than by the OpenTelemetry
SDK, whose per-span objects and encoder cost more CPU than the proxy path itself.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

from modelyard_gateway.settings import GatewaySettings

if TYPE_CHECKING:
    from modelyard_gateway.telemetry.otel import Telemetry

DEFAULT_SERVICE_NAME = "modelyard-gateway"


@dataclass(frozen=True, slots=True)
class Exporting:
    """Where OpenTelemetry data goes (OTLP/HTTP URLs; no metrics URL: no metrics)."""

    traces_url: str
    metrics_url: str | None
    service_name: str
    sample_ratio: float
    metrics_interval_s: float


def _signal_url(base: str, signal: str) -> str:
    return base.rstrip("/") + "/v1/" + signal


def exporting(
    settings: GatewaySettings, environ: Mapping[str, str] = os.environ
) -> Exporting | None:
    """Return where to export to, or None when OpenTelemetry is not configured.

    The gateway's setting (MODELYARD_GATEWAY_OTEL_ENDPOINT) wins over the standard
    OTEL_EXPORTER_OTLP_ENDPOINT; the per-signal OTEL_EXPORTER_OTLP_{TRACES,METRICS}_ENDPOINT
    variables are full URLs, as the OTLP specification has them. OTEL_SDK_DISABLED=true turns
    it all off.
    """
    if environ.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return None
    base = settings.otel_endpoint or environ.get("OTEL_EXPORTER_OTLP_ENDPOINT") or None
    traces = (
        None if settings.otel_endpoint else environ.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
    ) or (_signal_url(base, "traces") if base else None)
    if not traces:
        return None
    metrics = (
        None if settings.otel_endpoint else environ.get("OTEL_EXPORTER_OTLP_METRICS_ENDPOINT")
    ) or (_signal_url(base, "metrics") if base else None)
    return Exporting(
        traces_url=traces,
        metrics_url=metrics,
        service_name=settings.otel_service_name
        or environ.get("OTEL_SERVICE_NAME")
        or DEFAULT_SERVICE_NAME,
        sample_ratio=settings.otel_sample_ratio,
        metrics_interval_s=settings.otel_metrics_interval_s,
    )


def configure(settings: GatewaySettings) -> Telemetry | None:
    """Return the replica's telemetry, or None (nothing is created) when it is not configured."""
    target = exporting(settings)
    if target is None:
        return None
    from modelyard_gateway.telemetry.otel import Telemetry

    return Telemetry(target)
