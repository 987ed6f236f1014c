"""Failover: try a group's instances in order and answer from the first that works.

The group's strategy (`routing.strategies`) decides each request's order; failover is the same
whatever the strategy.

Instances that are cooling down or marked down are skipped on the first pass; when no other
instance answered they are tried anyway (the one whose cooldown ends first, then the next), so a
503 means every instance was tried in this request, or its deadline ran out.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import aiohttp
import orjson

from modelyard_gateway import metrics
from modelyard_gateway.routing.catalog import GroupRoute, InstanceRoute
from modelyard_gateway.routing.fastclient import BoundReached
from modelyard_gateway.routing.health import TRY_ANYWAY, HealthBoard, Ticket
from modelyard_gateway.routing.strategies import attempt_order
from modelyard_gateway.routing.upstream import (
    INSTANCE_FAULT_4XX,
    UpstreamFailure,
    UpstreamResponse,
    Upstreams,
    classify_transport_error,
    parse_retry_after,
)
from modelyard_gateway.settings import GatewaySettings
from modelyard_gateway.usage.service import reported_usage

if TYPE_CHECKING:  # telemetry's module is imported only when it is configured
    from modelyard_gateway.telemetry.otel import RequestTrace

log = logging.getLogger("modelyard.gateway.proxy")

_ERROR_BODY_LIMIT = 64 * 1024
DEADLINE_EXCEEDED = "deadline_exceeded"


@dataclass(frozen=True, slots=True)
class Deadlines:
    """The timeouts of one attempt, in seconds (`stream_idle` is also used by the relay)."""

    connect: float
    first_byte: float
    stream_idle: float


@dataclass(frozen=True, slots=True)
class Call:
    """One client request as the failover carries it from attempt to attempt."""

    group: GroupRoute
    path: str
    request: Mapping[str, Any]
    stream: bool
    deadline: float  # event loop clock
    trace: RequestTrace | None = None  # None: OpenTelemetry is off


@dataclass(slots=True)
class Answer:
    """A complete upstream answer (non-streaming, or a streaming request refused with a 4xx)."""

    instance: InstanceRoute
    attempts: int
    status: int
    content_type: str
    body: bytes
    usage: Mapping[str, Any] | None = None  # what the backend reported it used (OpenAI `usage`)
    earlier: list[Outcome] = field(default_factory=list)  # instances that failed before it
    model: str | None = None  # the model the answer says answered (OpenAI `model`)
    first_byte: float = 0.0  # when its headers arrived (perf_counter)
    waited: float = 0.0  # seconds spent on upstream attempts, this one included


@dataclass(slots=True)
class StreamAnswer:
    """An upstream stream that has produced its first bytes and is ready to relay."""

    instance: InstanceRoute
    attempts: int
    status: int
    content_type: str
    first_chunk: bytes
    response: UpstreamResponse
    ticket: Ticket
    idle_timeout: float = 60.0
    earlier: list[Outcome] = field(default_factory=list)  # instances that failed before it
    first_byte: float = 0.0  # when its first chunk arrived (perf_counter)
    waited: float = 0.0  # seconds spent on upstream attempts (the relay adds the stream's)


@dataclass(frozen=True, slots=True)
class Outcome:
    """Why one instance did not answer this request: a stable code, and the detail for logs."""

    instance: str
    code: str
    detail: str
    tried: bool


@dataclass(slots=True)
class Exhausted:
    """Every instance of the group was tried and failed (or skipped, or the deadline ran out)."""

    attempts: int
    outcomes: list[Outcome] = field(default_factory=list)
    waited: float = 0.0  # seconds spent on upstream attempts

    def client_view(self) -> list[dict[str, Any]]:
        """Return what a client may see: each instance's reason code, never addresses or texts."""
        return [{"instance": o.instance, "code": o.code, "tried": o.tried} for o in self.outcomes]


def upstream_payload(inst: InstanceRoute, request: Mapping[str, Any]) -> bytes:
    """Return the request body for `inst`: its defaults under the client's fields, capped."""
    merged = {**inst.default_params, **request} if inst.default_params else dict(request)
    merged["model"] = inst.upstream_model
    for name, cap in inst.param_caps.items():
        value = merged.get(name)
        if isinstance(value, int | float) and not isinstance(value, bool) and value > cap:
            merged[name] = int(cap) if float(cap).is_integer() else cap
    return orjson.dumps(merged)


class ProxyService:
    """Sends one client request through a group's instances."""

    def __init__(
        self, *, board: HealthBoard, upstreams: Upstreams, settings: GatewaySettings
    ) -> None:
        self.board = board
        self.upstreams = upstreams
        self.settings = settings

    def deadlines(self, inst: InstanceRoute, *, stream: bool) -> Deadlines:
        """Return an attempt's timeouts: the gateway's, shortened by the instance's own."""
        s = self.settings
        read = inst.timeout.sock_read or s.stream_idle_timeout_s
        return Deadlines(
            connect=min(inst.timeout.sock_connect or s.connect_timeout_s, s.connect_timeout_s),
            first_byte=min(read, s.first_byte_timeout_s if stream else s.answer_timeout_s),
            stream_idle=min(read, s.stream_idle_timeout_s),
        )

    async def forward(
        self,
        group: GroupRoute,
        path: str,
        request: Mapping[str, Any],
        *,
        stream: bool,
        deadline: float | None = None,
        affinity: int | None = None,
        trace: RequestTrace | None = None,
    ) -> Answer | StreamAnswer | Exhausted:
        """Return the first usable answer of the group's instances, or why there is none.

        `deadline` is on the event loop's clock (`loop.time()`); no attempt starts after it.
        `affinity` names the client of a sticky group (`strategies.affinity_of`); `trace`
        (OpenTelemetry on) gets a span per attempt.
        """
        loop = asyncio.get_running_loop()
        if deadline is None:
            deadline = loop.time() + self.settings.request_deadline_s
        call = Call(group, path, request, stream, deadline, trace)
        result = Exhausted(0)
        passed_over: list[InstanceRoute] = []
        for inst in attempt_order(group, self.board, affinity):
            ticket = self.board.admit(inst)
            if isinstance(ticket, str):
                metrics.skips(group.workspace, group.name, inst.name, ticket).inc()
                if ticket in TRY_ANYWAY:
                    passed_over.append(inst)
                else:
                    result.outcomes.append(Outcome(inst.name, ticket, f"skipped: {ticket}", False))
                continue
            answer = await self._try(call, inst, ticket, result)
            if answer is not None:
                answer.earlier = result.outcomes
                answer.waited = result.waited
                return answer
        # Nothing answered: whatever was passed over may have recovered since; try it now.
        passed_over.sort(key=self.board.retry_order)
        for inst in passed_over:
            answer = await self._try(call, inst, self.board.force(inst), result)
            if answer is not None:
                answer.earlier = result.outcomes
                answer.waited = result.waited
                return answer
        metrics.requests(group.workspace, group.name, "", "exhausted").inc()
        if result.outcomes:
            log.warning(
                "no instance of %s/%s answered after %d attempts: %s",
                group.workspace,
                group.name,
                result.attempts,
                "; ".join(f"{o.instance}: [{o.code}] {o.detail}" for o in result.outcomes),
            )
        return result

    async def _try(
        self, call: Call, inst: InstanceRoute, ticket: Ticket, result: Exhausted
    ) -> Answer | StreamAnswer | None:
        """Make one attempt; on failure record it in `result` and return None."""
        group = call.group
        if asyncio.get_running_loop().time() >= call.deadline:
            self.board.abandoned(ticket)
            result.outcomes.append(
                Outcome(inst.name, DEADLINE_EXCEEDED, "the request's deadline ran out", False)
            )
            return None
        result.attempts += 1
        trace = call.trace
        parent = (
            None
            if trace is None
            else trace.attempt(inst.name, inst.upstream_model, *_address(inst))
        )
        started = time.perf_counter()
        try:
            answer = await self._attempt(call, inst, ticket, result.attempts, parent)
        except UpstreamFailure as failure:
            result.waited += time.perf_counter() - started
            if trace is not None:
                trace.attempt_ended(failure.cause, failure.status)
            if failure.cause != DEADLINE_EXCEEDED:
                self.board.failed(ticket, failure.reason, failure.retry_after, failure.cause)
            else:
                self.board.abandoned(ticket)  # the client's budget, not the instance's fault
            metrics.failures(group.workspace, group.name, inst.name, failure.cause).inc()
            result.outcomes.append(Outcome(inst.name, failure.cause, failure.reason, True))
            return None
        except BaseException:
            # The client went away (cancellation) or a bug: no verdict on the instance.
            self.board.abandoned(ticket)
            raise
        result.waited += time.perf_counter() - started
        if isinstance(answer, Answer):
            if trace is not None:
                trace.attempt_ended("ok", answer.status)
            self.board.succeeded(ticket)
            metrics.requests(group.workspace, group.name, inst.name, "ok").inc()
        return answer

    async def _attempt(
        self,
        call: Call,
        inst: InstanceRoute,
        ticket: Ticket,
        attempts: int,
        traceparent: str | None = None,
    ) -> Answer | StreamAnswer:
        group, stream, deadline = call.group, call.stream, call.deadline
        limits = self.deadlines(inst, stream=stream)
        started = time.perf_counter()
        first_byte_at = asyncio.get_running_loop().time() + limits.first_byte
        # Until the first bytes (a stream's first chunk, an answer's headers): the first-byte
        # deadline or the request's, whichever comes first; then the request's. The bound rides
        # on the connection's own read timer, so the hot path arms no extra one.
        bound = min(first_byte_at, deadline)
        first_phase = True
        try:
            resp = await self.upstreams.post(
                inst,
                call.path,
                upstream_payload(inst, call.request),
                connect_timeout=limits.connect,
                read_timeout=limits.stream_idle,
                until=bound,
                traceparent=traceparent,
            )
        except BoundReached as exc:
            raise _expired(bound < deadline, limits.first_byte) from exc
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            raise _first_phase_failure(exc, inst, limits.first_byte) from exc
        headers_after = time.perf_counter() - started
        try:
            status = resp.status
            content_type = resp.header("Content-Type") or "application/json"
            if status >= 500 or status in INSTANCE_FAULT_4XX:
                detail = await _read_capped(resp)
                cause = "rate_limited" if status == 429 else f"http_{status // 100}xx"
                retry_after = parse_retry_after(resp.header("Retry-After"))
                resp.close()
                raise UpstreamFailure(
                    cause,
                    f"HTTP {status}: {detail[:200]}",
                    retry_after if status in (429, 503) else None,
                    status=status,
                )
            if stream and status == 200:
                first = await resp.next_chunk()
                if not first:
                    raise UpstreamFailure("dropped", "stream ended before its first byte")
                arrived = time.perf_counter()
                took = arrived - started
                metrics.ttfb(group.workspace, group.name, inst.name).observe(took)
                self.board.took(inst.id, took)
                resp.until = deadline
                return StreamAnswer(
                    inst,
                    attempts,
                    status,
                    content_type,
                    first,
                    resp,
                    ticket,
                    limits.stream_idle,
                    first_byte=arrived,
                )
            first_phase = False
            resp.until = deadline
            body = await resp.read()
            resp.release()
        except BoundReached as exc:
            resp.close()
            raise _expired(first_phase and bound < deadline, limits.first_byte) from exc
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            resp.close()
            if first_phase:
                raise _first_phase_failure(exc, inst, limits.first_byte) from exc
            raise classify_transport_error(exc, inst) from exc
        except BaseException:
            resp.close()
            raise
        usage = model = None
        if status < 300:
            try:
                parsed = orjson.loads(body)  # parsed anyway, to check it
            except orjson.JSONDecodeError as exc:
                raise UpstreamFailure("malformed", "answer is not valid JSON") from exc
            usage = reported_usage(parsed)
            if isinstance(parsed, dict):
                named = parsed.get("model")
                model = named if isinstance(named, str) else None
        metrics.latency(group.workspace, group.name, inst.name).observe(
            time.perf_counter() - started
        )
        # A non-streaming answer's first byte is its headers (sent once it is generated).
        self.board.took(inst.id, headers_after)
        return Answer(
            inst,
            attempts,
            status,
            content_type,
            body,
            usage,
            model=model,
            first_byte=started + headers_after,
        )


def _address(inst: InstanceRoute) -> tuple[str, int | None]:
    """Return the host and port an instance's requests go to (for its attempts' spans)."""
    if inst.target is not None:
        return inst.target.host, inst.target.port
    url = urlsplit(inst.base_url)
    return url.hostname or "", url.port or (443 if url.scheme == "https" else 80)


def _first_phase_failure(
    exc: BaseException, inst: InstanceRoute, first_byte_s: float
) -> UpstreamFailure:
    """Return what a transport error before the first bytes means (a read timeout there is a
    first-byte timeout, whichever timer fired: the instance's read timeout may be the shorter)."""
    failure = classify_transport_error(exc, inst)
    if failure.cause == "idle_timeout":
        return _expired(True, first_byte_s)
    return failure


def _expired(first_byte: bool, seconds: float) -> UpstreamFailure:
    if first_byte:
        return UpstreamFailure("first_byte_timeout", f"no first byte within {seconds:g}s")
    return UpstreamFailure(DEADLINE_EXCEEDED, "the request's deadline ran out")


async def _read_capped(resp: UpstreamResponse) -> str:
    try:
        raw = await resp.read(_ERROR_BODY_LIMIT)
    except (aiohttp.ClientError, TimeoutError, OSError):
        return ""
    return raw.decode("utf-8", "replace").strip().replace("\n", " ")
