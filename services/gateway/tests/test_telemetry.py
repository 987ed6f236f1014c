"""OpenTelemetry (spans and GenAI metrics over OTLP/HTTP, received by a real endpoint on
loopback) and the Prometheus first-byte and added-time histograms per group."""

from __future__ import annotations

import asyncio
import gzip
import re
import secrets
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import httpx
import pytest
from aiohttp import web
from gateway_testkit import (
    STREAM_PROMPT_TOKENS,
    Admin,
    FakeBackend,
    GatewayServer,
    LoopThread,
    eventually,
    free_port,
)
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
    ExportMetricsServiceRequest,
    ExportMetricsServiceResponse,
)
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.trace.v1.trace_pb2 import Span

from modelyard_gateway.settings import GatewaySettings
from modelyard_gateway.telemetry import exporting

SERVER = Span.SpanKind.SPAN_KIND_SERVER
CLIENT = Span.SpanKind.SPAN_KIND_CLIENT


class OtlpReceiver:
    """An OTLP/HTTP endpoint (protobuf) on loopback that keeps every export it receives."""

    def __init__(self) -> None:
        self.thread = LoopThread("otlp-receiver")
        self.traces: list[ExportTraceServiceRequest] = []
        self.metrics: list[ExportMetricsServiceRequest] = []
        self.raw: list[bytes] = []
        self.port = 0
        self._runner: web.AppRunner | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def _start(self) -> None:
        app = web.Application()
        app.router.add_post("/v1/traces", self._on_traces)
        app.router.add_post("/v1/metrics", self._on_metrics)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        assert site._server is not None
        self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[attr-defined]

    async def _body(self, request: web.Request) -> bytes:
        assert request.content_type == "application/x-protobuf"
        body = await request.read()
        if request.headers.get("Content-Encoding") == "gzip":
            body = gzip.decompress(body)
        self.raw.append(body)
        return body

    async def _on_traces(self, request: web.Request) -> web.Response:
        message = ExportTraceServiceRequest()
        message.ParseFromString(await self._body(request))
        self.traces.append(message)
        reply = ExportTraceServiceResponse().SerializeToString()
        return web.Response(body=reply, content_type="application/x-protobuf")

    async def _on_metrics(self, request: web.Request) -> web.Response:
        message = ExportMetricsServiceRequest()
        message.ParseFromString(await self._body(request))
        self.metrics.append(message)
        reply = ExportMetricsServiceResponse().SerializeToString()
        return web.Response(body=reply, content_type="application/x-protobuf")

    def start(self) -> OtlpReceiver:
        self.thread.run(self._start())
        return self

    def stop(self) -> None:
        if self._runner is not None:
            self.thread.run(self._runner.cleanup())
        self.thread.stop()

    def spans(self) -> list[tuple[dict[str, Any], Span]]:
        """Return every span received, with its resource's attributes."""
        found = []
        for export in list(self.traces):
            for resource_spans in export.resource_spans:
                resource = attributes(resource_spans.resource.attributes)
                for scope_spans in resource_spans.scope_spans:
                    found.extend((resource, span) for span in scope_spans.spans)
        return found


def _value(value: AnyValue) -> Any:
    kind = value.WhichOneof("value")
    return getattr(value, kind) if kind else None


def attributes(pairs: Any) -> dict[str, Any]:
    """Return OTLP key-values as a dict."""
    return {kv.key: _value(kv.value) for kv in pairs if isinstance(kv, KeyValue)}


@pytest.fixture(scope="module")
def receiver() -> Iterator[OtlpReceiver]:
    server = OtlpReceiver().start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def traced(
    make_settings: Callable[..., GatewaySettings], receiver: OtlpReceiver
) -> Iterator[GatewayServer]:
    """Yield a replica that exports its telemetry to the receiver."""
    settings = make_settings(
        consume_events=False, otel_endpoint=receiver.url, otel_metrics_interval_s=3600
    )
    server = GatewayServer(settings).start()
    yield server
    server.stop()


@pytest.fixture
async def traced_admin(traced: GatewayServer) -> AsyncIterator[Admin]:
    user = Admin(traced)
    yield user
    await user.close()


async def flush(gateway: GatewayServer) -> None:
    """Export what the replica's telemetry holds now (on the replica's loop)."""
    telemetry = gateway.app.state.telemetry
    await asyncio.wrap_future(asyncio.run_coroutine_threadsafe(telemetry.flush(), telemetry.loop))


async def request_spans(
    gateway: GatewayServer, receiver: OtlpReceiver, workspace: str, count: int
) -> tuple[list[Span], list[Span]]:
    """Wait for `count` request spans of a workspace; return them and their attempt spans."""
    found: tuple[list[Span], list[Span]] = ([], [])

    def arrived() -> bool:
        nonlocal found
        spans = [span for _, span in receiver.spans()]
        server = [
            s
            for s in spans
            if s.kind == SERVER and attributes(s.attributes).get("modelyard.workspace") == workspace
        ]
        traces = {s.trace_id for s in server}
        client = [s for s in spans if s.kind == CLIENT and s.trace_id in traces]
        found = (server, client)
        return len(server) >= count

    async def flushed() -> None:
        while not arrived():
            await flush(gateway)
            await asyncio.sleep(0.05)

    await asyncio.wait_for(flushed(), 15)
    return found


def chat_body(text: str = "hi", **extra: Any) -> dict[str, Any]:
    return {"model": "chat", "messages": [{"role": "user", "content": text}], **extra}


async def post(
    gateway: GatewayServer, key: str, body: dict[str, Any], headers: dict[str, str] | None = None
) -> httpx.Response:
    async with httpx.AsyncClient(base_url=gateway.url, timeout=10) as http:
        return await http.post(
            "/v1/chat/completions",
            json=body,
            headers={"Authorization": f"Bearer {key}", **(headers or {})},
        )


async def test_each_request_gives_one_server_span_with_the_genai_attributes(
    traced: GatewayServer,
    traced_admin: Admin,
    receiver: OtlpReceiver,
    backends: Callable[[str], FakeBackend],
) -> None:
    backend = backends("b")
    inst = await traced_admin.instance(backend, name="only", upstream_model="llama-3")
    await traced_admin.group("chat", [inst])
    key = await traced_admin.key()
    for _ in range(3):
        assert (await post(traced, key, chat_body())).status_code == 200

    server, client = await request_spans(traced, receiver, traced_admin.workspace, 3)

    assert len(server) == 3
    assert len(client) == 3
    resource = next(r for r, s in receiver.spans() if s in server)
    assert resource["service.name"] == "modelyard-gateway"
    for span in server:
        assert span.name == "chat chat"
        assert attributes(span.attributes) == {
            "gen_ai.operation.name": "chat",
            "gen_ai.request.model": "chat",
            "gen_ai.response.model": "llama-3",
            "gen_ai.usage.input_tokens": 1,
            "gen_ai.usage.output_tokens": 2,
            "http.response.status_code": 200,
            "modelyard.workspace": traced_admin.workspace,
            "modelyard.group": "chat",
            "modelyard.attempts": 1,
        }
        assert span.status.code != span.status.STATUS_CODE_ERROR
    for span in client:
        assert span.name == "chat llama-3"
        assert attributes(span.attributes) == {
            "gen_ai.operation.name": "chat",
            "gen_ai.request.model": "llama-3",
            "server.address": "127.0.0.1",
            "server.port": backend.port,
            "modelyard.instance": "only",
            "modelyard.outcome": "ok",
            "http.response.status_code": 200,
        }
        parent = next(s for s in server if s.trace_id == span.trace_id)
        assert span.parent_span_id == parent.span_id
        assert parent.start_time_unix_nano <= span.start_time_unix_nano
        assert span.end_time_unix_nano <= parent.end_time_unix_nano


async def test_a_failover_gives_two_attempt_spans_under_one_request_span(
    traced: GatewayServer,
    traced_admin: Admin,
    receiver: OtlpReceiver,
    backends: Callable[[str], FakeBackend],
) -> None:
    refused_port = free_port()
    first = await traced_admin.instance(refused_port, name="gone")
    second = await traced_admin.instance(backends("good"), name="good")
    await traced_admin.group("chat", [first, second])
    response = await post(traced, await traced_admin.key(), chat_body())
    assert response.status_code == 200
    assert response.headers["x-modelyard-attempts"] == "2"

    (request,), attempts = await request_spans(traced, receiver, traced_admin.workspace, 1)

    assert attributes(request.attributes)["modelyard.attempts"] == 2
    assert len(attempts) == 2
    assert {a.parent_span_id for a in attempts} == {request.span_id}
    gone, good = sorted(attempts, key=lambda a: a.start_time_unix_nano)
    assert attributes(gone.attributes)["modelyard.instance"] == "gone"
    assert attributes(gone.attributes)["server.port"] == refused_port
    assert attributes(gone.attributes)["modelyard.outcome"] == "connect_failed"
    assert attributes(gone.attributes)["error.type"] == "connect_failed"
    assert gone.status.code == gone.status.STATUS_CODE_ERROR
    assert attributes(good.attributes)["modelyard.outcome"] == "ok"
    assert "error.type" not in attributes(good.attributes)


async def test_the_upstream_gets_the_attempt_spans_traceparent(
    traced: GatewayServer,
    traced_admin: Admin,
    receiver: OtlpReceiver,
    backends: Callable[[str], FakeBackend],
) -> None:
    backend = backends("b")
    await traced_admin.group("chat", [await traced_admin.instance(backend)])
    assert (await post(traced, await traced_admin.key(), chat_body())).status_code == 200

    (request,), (attempt,) = await request_spans(traced, receiver, traced_admin.workspace, 1)

    sent = backend.headers[-1]["traceparent"]
    version, trace_id, parent_id, flags = sent.split("-")
    assert version == "00"
    assert int(flags, 16) & 1 == 1
    assert bytes.fromhex(trace_id) == request.trace_id == attempt.trace_id
    assert bytes.fromhex(parent_id) == attempt.span_id


async def test_an_incoming_traceparent_becomes_the_request_spans_parent(
    traced: GatewayServer,
    traced_admin: Admin,
    receiver: OtlpReceiver,
    backends: Callable[[str], FakeBackend],
) -> None:
    backend = backends("b")
    await traced_admin.group("chat", [await traced_admin.instance(backend)])
    trace_id, parent_id = secrets.token_hex(16), secrets.token_hex(8)
    headers = {"traceparent": f"00-{trace_id}-{parent_id}-01"}
    response = await post(traced, await traced_admin.key(), chat_body(), headers)
    assert response.status_code == 200

    (request,), (attempt,) = await request_spans(traced, receiver, traced_admin.workspace, 1)

    assert request.trace_id.hex() == trace_id
    assert request.parent_span_id.hex() == parent_id
    assert attempt.trace_id.hex() == trace_id
    assert backend.headers[-1]["traceparent"].split("-")[1] == trace_id


async def test_no_prompt_or_answer_text_goes_into_a_span(
    traced: GatewayServer,
    traced_admin: Admin,
    receiver: OtlpReceiver,
    backends: Callable[[str], FakeBackend],
) -> None:
    backend = backends("b")
    prompt, reply = f"prompt-{uuid.uuid4().hex}", f"reply-{uuid.uuid4().hex}"
    backend.behaviour.reply = reply
    await traced_admin.group("chat", [await traced_admin.instance(backend)])
    key = await traced_admin.key()
    assert reply in (await post(traced, key, chat_body(prompt))).text
    streamed = await post(traced, key, chat_body(prompt, stream=True))
    assert reply in streamed.text

    await request_spans(traced, receiver, traced_admin.workspace, 2)

    exported = b"".join(receiver.raw)
    assert prompt.encode() not in exported
    assert reply.encode() not in exported


async def test_a_stream_reports_its_usage_and_failures_their_error_type(
    traced: GatewayServer,
    traced_admin: Admin,
    receiver: OtlpReceiver,
    backends: Callable[[str], FakeBackend],
) -> None:
    backend = backends("b")
    backend.behaviour.stream_chunks = 5
    chat = await traced_admin.instance(backend, upstream_model="llama-3")
    await traced_admin.group("chat", [chat])
    await traced_admin.group("dead", [await traced_admin.instance(free_port())])
    key = await traced_admin.key()
    body = chat_body(stream=True, stream_options={"include_usage": True})
    assert (await post(traced, key, body)).status_code == 200
    assert (await post(traced, key, {**chat_body(), "model": "dead"})).status_code == 503
    assert (await post(traced, key, {**chat_body(), "model": "nope"})).status_code == 404

    server, client = await request_spans(traced, receiver, traced_admin.workspace, 3)

    by_model = {attributes(s.attributes).get("gen_ai.request.model"): s for s in server}
    stream = attributes(by_model["chat"].attributes)
    assert stream["gen_ai.usage.input_tokens"] == STREAM_PROMPT_TOKENS
    assert stream["gen_ai.usage.output_tokens"] == 5
    assert stream["gen_ai.response.model"] == "llama-3"  # read from the stream's first event
    assert "error.type" not in stream
    dead = by_model["dead"]
    assert attributes(dead.attributes)["error.type"] == "connect_failed"
    assert attributes(dead.attributes)["http.response.status_code"] == 503
    assert dead.status.code == dead.status.STATUS_CODE_ERROR
    unknown = attributes(by_model["nope"].attributes)
    assert unknown["error.type"] == "model_not_found"
    assert unknown["http.response.status_code"] == 404
    assert by_model["nope"].name == "chat nope"
    outcomes = sorted(attributes(c.attributes)["modelyard.outcome"] for c in client)
    assert outcomes == ["connect_failed", "ok"]


def _points(receiver: OtlpReceiver, name: str, workspace: str) -> list[tuple[dict[str, Any], Any]]:
    """Return the data points of a histogram in the latest export that has the workspace's."""
    for export in reversed(receiver.metrics):
        found = []
        for resource_metrics in export.resource_metrics:
            for scope_metrics in resource_metrics.scope_metrics:
                for metric in scope_metrics.metrics:
                    if metric.name != name:
                        continue
                    for point in metric.histogram.data_points:
                        labels = attributes(point.attributes)
                        if labels.get("modelyard.workspace") == workspace:
                            found.append((labels, point))
        if found:
            return found
    return []


async def test_genai_metrics_arrive_with_group_and_workspace(
    traced: GatewayServer,
    traced_admin: Admin,
    receiver: OtlpReceiver,
    backends: Callable[[str], FakeBackend],
) -> None:
    backend = backends("b")
    inst = await traced_admin.instance(backend, upstream_model="llama-3")
    await traced_admin.group("chat", [inst])
    key = await traced_admin.key()
    for _ in range(4):
        assert (await post(traced, key, chat_body())).status_code == 200
    body = chat_body(stream=True, stream_options={"include_usage": True})
    assert (await post(traced, key, body)).status_code == 200
    ws = traced_admin.workspace
    await request_spans(traced, receiver, ws, 5)  # every request has ended
    await flush(traced)

    tokens = _points(receiver, "gen_ai.client.token.usage", ws)
    by_type: dict[str, tuple[int, float]] = {}
    for labels, point in tokens:
        assert labels["gen_ai.operation.name"] == "chat"
        assert labels["gen_ai.request.model"] == "chat"
        assert labels["modelyard.group"] == "chat"
        kind = labels["gen_ai.token.type"]
        count, total = by_type.get(kind, (0, 0.0))
        by_type[kind] = (count + point.count, total + point.sum)
    assert by_type == {
        "input": (5, 4 * 1 + STREAM_PROMPT_TOKENS),
        "output": (5, 4 * 2 + 3),
    }
    durations = _points(receiver, "gen_ai.client.operation.duration", ws)
    assert sum(p.count for _, p in durations) == 5
    assert all(labels["gen_ai.response.model"] == "llama-3" for labels, _ in durations[:1])
    first_chunks = _points(receiver, "gen_ai.client.operation.time_to_first_chunk", ws)
    assert sum(p.count for _, p in first_chunks) == 1
    assert 0 < first_chunks[0][1].sum < 5


async def test_telemetry_is_off_without_an_endpoint(
    gateway: GatewayServer,
    admin: Admin,
    backends: Callable[[str], FakeBackend],
    make_settings: Callable[..., GatewaySettings],
) -> None:
    assert gateway.app.state.telemetry is None
    assert exporting(make_settings(), environ={}) is None
    backend = backends("b")
    await admin.group("chat", [await admin.instance(backend)])
    assert (await post(gateway, await admin.key(), chat_body())).status_code == 200
    assert "traceparent" not in {name.lower() for name in backend.headers[-1]}


def test_the_standard_otel_variables_configure_it(
    make_settings: Callable[..., GatewaySettings],
) -> None:
    base = exporting(make_settings(), environ={"OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318/"})
    assert base is not None
    assert (base.traces_url, base.metrics_url) == (
        "http://c:4318/v1/traces",
        "http://c:4318/v1/metrics",
    )
    assert base.service_name == "modelyard-gateway"
    only_traces = exporting(
        make_settings(otel_sample_ratio=0.25),
        environ={
            "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://t:4318/custom",
            "OTEL_SERVICE_NAME": "edge-gateway",
        },
    )
    assert only_traces is not None
    assert (only_traces.traces_url, only_traces.metrics_url) == ("http://t:4318/custom", None)
    assert (only_traces.service_name, only_traces.sample_ratio) == ("edge-gateway", 0.25)
    setting = exporting(
        make_settings(otel_endpoint="http://s:4318"),
        environ={"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://t:4318/custom"},
    )
    assert setting is not None
    assert setting.traces_url == "http://s:4318/v1/traces"
    disabled = {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318", "OTEL_SDK_DISABLED": "true"}
    assert exporting(make_settings(), environ=disabled) is None


def _series(metrics: str, name: str, workspace: str, **labels: str) -> float:
    """Return the value of one Prometheus sample of the workspace's group `chat`."""
    wanted = {"group": "chat", "workspace": workspace, **labels}
    for line in metrics.splitlines():
        match = re.fullmatch(rf"{name}\{{(.*)\}} (\S+)", line)
        if match and dict(re.findall(r'(\w+)="([^"]*)"', match[1])) == wanted:
            return float(match[2])
    raise AssertionError(f"no {name} sample for {wanted}")


async def test_prometheus_first_byte_and_added_time_per_group(
    gateway: GatewayServer, admin: Admin, backends: Callable[[str], FakeBackend]
) -> None:
    backend = backends("b")
    backend.behaviour.delay_s = 0.1  # upstream time: in first byte, not in the gateway's own
    await admin.group("chat", [await admin.instance(backend)])
    key = await admin.key()
    for _ in range(2):
        assert (await post(gateway, key, chat_body())).status_code == 200
    streamed = chat_body(stream=True)
    assert (await post(gateway, key, streamed)).status_code == 200

    metrics = (await admin.http.get("/metrics")).text
    ws = admin.workspace
    assert _series(metrics, "modelyard_gateway_first_byte_seconds_count", ws) == 3
    assert _series(metrics, "modelyard_gateway_first_byte_seconds_sum", ws) >= 0.3
    assert _series(metrics, "modelyard_gateway_added_seconds_count", ws) == 3
    assert 0 < _series(metrics, "modelyard_gateway_added_seconds_sum", ws) < 0.1
    # Sub-millisecond resolution for the gateway's own time.
    below = _series(metrics, "modelyard_gateway_added_seconds_bucket", ws, le="0.0005")
    assert 0 <= below <= _series(metrics, "modelyard_gateway_added_seconds_bucket", ws, le="+Inf")
    assert _series(metrics, "modelyard_gateway_first_byte_seconds_bucket", ws, le="0.05") == 0


async def test_with_the_request_log_off_no_record_is_kept(
    make_settings: Callable[..., GatewaySettings], backends: Callable[[str], FakeBackend]
) -> None:
    server = GatewayServer(
        make_settings(consume_events=False, request_log_enabled=False, request_log_flush_s=0.05)
    ).start()
    try:
        user = Admin(server)
        try:
            await user.group("chat", [await user.instance(backends("b"))])
            key = await user.key()
            for body in (chat_body(), chat_body(stream=True)):
                assert (await post(server, key, body)).status_code == 200
            log = server.app.state.proxy_endpoints.requests
            await asyncio.sleep(0.2)  # several flush intervals
            assert (log.pending, log.written) == (0, 0)
            listed = await user.http.get("/v1/requests")
            assert listed.status_code == 200
            assert listed.json()["items"] == []
        finally:
            await user.close()
    finally:
        await asyncio.to_thread(server.stop)


async def test_a_graceful_stop_exports_the_last_spans(
    make_settings: Callable[..., GatewaySettings],
    receiver: OtlpReceiver,
    backends: Callable[[str], FakeBackend],
) -> None:
    server = GatewayServer(make_settings(consume_events=False, otel_endpoint=receiver.url))
    server.start()
    user = Admin(server)
    try:
        await user.group("chat", [await user.instance(backends("b"))])
        assert (await post(server, await user.key(), chat_body())).status_code == 200
    finally:
        await user.close()
        await eventually(lambda: server.app.state.telemetry is not None)
        await asyncio.to_thread(server.stop)  # no flush asked: the stop exports

    spans = [
        s
        for _, s in receiver.spans()
        if attributes(s.attributes).get("modelyard.workspace") == user.workspace
    ]
    assert len(spans) == 1


async def test_a_zero_sample_ratio_records_no_span_but_passes_the_trace_on(
    make_settings: Callable[..., GatewaySettings],
    receiver: OtlpReceiver,
    backends: Callable[[str], FakeBackend],
) -> None:
    server = GatewayServer(
        make_settings(consume_events=False, otel_endpoint=receiver.url, otel_sample_ratio=0.0)
    ).start()
    user = Admin(server)
    try:
        backend = backends("b")
        await user.group("chat", [await user.instance(backend)])
        key = await user.key()
        for _ in range(2):
            assert (await post(server, key, chat_body())).status_code == 200
        sent = backend.headers[-1]["traceparent"]
        assert sent.startswith("00-")
        assert sent.endswith("-00")  # not sampled, and said so upstream
        # A caller that samples decides for its trace.
        trace_id = secrets.token_hex(16)
        headers = {"traceparent": f"00-{trace_id}-{secrets.token_hex(8)}-01"}
        assert (await post(server, key, chat_body(), headers)).status_code == 200
        (request,), _ = await request_spans(server, receiver, user.workspace, 1)
        assert request.trace_id.hex() == trace_id
        await flush(server)
        usage = _points(receiver, "gen_ai.client.token.usage", user.workspace)
        assert sum(p.count for _, p in usage) == 6  # metrics count every request
        await asyncio.sleep(0.1)
        await flush(server)
        spans = [
            s
            for _, s in receiver.spans()
            if attributes(s.attributes).get("modelyard.workspace") == user.workspace
        ]
        assert len(spans) == 1
    finally:
        await user.close()
        await asyncio.to_thread(server.stop)


async def test_a_collector_that_is_down_costs_dropped_spans_not_requests(
    make_settings: Callable[..., GatewaySettings], backends: Callable[[str], FakeBackend]
) -> None:
    server = GatewayServer(
        make_settings(consume_events=False, otel_endpoint=f"http://127.0.0.1:{free_port()}")
    ).start()
    user = Admin(server)
    try:
        await user.group("chat", [await user.instance(backends("b"))])
        key = await user.key()
        for _ in range(3):
            assert (await post(server, key, chat_body())).status_code == 200
        await flush(server)
        telemetry = server.app.state.telemetry
        assert telemetry.dropped >= 6  # a request span and an attempt span each
        assert telemetry.finished == []
        metrics = (await user.http.get("/metrics")).text
        dropped = re.search(r"^modelyard_gateway_otel_spans_dropped_total (\S+)$", metrics, re.M)
        assert dropped is not None
        assert float(dropped[1]) >= 6
    finally:
        await user.close()
        started = asyncio.get_running_loop().time()
        await asyncio.to_thread(server.stop)
        assert asyncio.get_running_loop().time() - started < 10
