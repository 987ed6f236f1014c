"""Failover: try a group's instances in order and answer from the first that works."""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import orjson

from modelyard_gateway import metrics
from modelyard_gateway.runtime.catalog import GroupRoute, InstanceRoute
from modelyard_gateway.runtime.health import HealthBoard, Ticket
from modelyard_gateway.runtime.upstream import (
    INSTANCE_FAULT_4XX,
    UpstreamFailure,
    UpstreamResponse,
    Upstreams,
    classify_transport_error,
    parse_retry_after,
)

_ERROR_BODY_LIMIT = 64 * 1024


@dataclass(slots=True)
class Answer:
    """A complete upstream answer (non-streaming, or a streaming request refused with a 4xx)."""

    instance: InstanceRoute
    attempts: int
    status: int
    content_type: str
    body: bytes


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


@dataclass(slots=True)
class Exhausted:
    """Every instance of the group was skipped or failed."""

    attempts: int
    reasons: list[dict[str, str]] = field(default_factory=list)


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

    def __init__(self, *, board: HealthBoard, upstreams: Upstreams) -> None:
        self.board = board
        self.upstreams = upstreams

    async def forward(
        self, group: GroupRoute, path: str, request: Mapping[str, Any], *, stream: bool
    ) -> Answer | StreamAnswer | Exhausted:
        """Return the first usable answer of the group's instances, or why there is none."""
        attempts = 0
        reasons: list[dict[str, str]] = []
        for inst in group.instances:
            ticket = self.board.admit(inst)
            if isinstance(ticket, str):
                metrics.skips(group.workspace, group.name, inst.name, ticket).inc()
                reasons.append({"instance": inst.name, "reason": f"skipped: {ticket}"})
                continue
            attempts += 1
            try:
                answer = await self._attempt(group, inst, path, request, stream, ticket, attempts)
            except UpstreamFailure as failure:
                self.board.failed(ticket, failure.reason, failure.retry_after)
                metrics.failures(group.workspace, group.name, inst.name, failure.cause).inc()
                reasons.append({"instance": inst.name, "reason": failure.reason})
                continue
            except BaseException:
                # The client went away (cancellation) or a bug: no verdict on the instance.
                self.board.abandoned(ticket)
                raise
            if isinstance(answer, Answer):
                self.board.succeeded(ticket)
                metrics.requests(group.workspace, group.name, inst.name, "ok").inc()
            return answer
        metrics.requests(group.workspace, group.name, "", "exhausted").inc()
        return Exhausted(attempts, reasons)

    async def _attempt(
        self,
        group: GroupRoute,
        inst: InstanceRoute,
        path: str,
        request: Mapping[str, Any],
        stream: bool,
        ticket: Ticket,
        attempts: int,
    ) -> Answer | StreamAnswer:
        started = time.perf_counter()
        try:
            resp = await self.upstreams.post(inst, path, upstream_payload(inst, request))
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            raise classify_transport_error(exc, inst) from exc
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
                )
            if stream and status == 200:
                first = await resp.next_chunk()
                if not first:
                    raise UpstreamFailure("dropped", "stream ended before its first byte")
                metrics.ttfb(group.workspace, group.name, inst.name).observe(
                    time.perf_counter() - started
                )
                return StreamAnswer(inst, attempts, status, content_type, first, resp, ticket)
            body = await resp.read()
            resp.release()
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            resp.close()
            raise classify_transport_error(exc, inst) from exc
        except BaseException:
            resp.close()
            raise
        if status < 300:
            try:
                orjson.loads(body)
            except orjson.JSONDecodeError as exc:
                raise UpstreamFailure("malformed", "answer is not valid JSON") from exc
        metrics.latency(group.workspace, group.name, inst.name).observe(
            time.perf_counter() - started
        )
        return Answer(inst, attempts, status, content_type, body)


async def _read_capped(resp: UpstreamResponse) -> str:
    try:
        raw = await resp.read(_ERROR_BODY_LIMIT)
    except (aiohttp.ClientError, TimeoutError, OSError):
        return ""
    return raw.decode("utf-8", "replace").strip().replace("\n", " ")
