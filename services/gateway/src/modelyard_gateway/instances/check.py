"""`POST /v1/instances/{id}/check`: probe an instance now, within a per-instance limit."""

from __future__ import annotations

import logging
import math
import time
import uuid
from collections import deque
from typing import Annotated

from fastapi import Depends, Request
from sqlalchemy.ext.asyncio import AsyncSession

from modelyard_common.auth import Principal
from modelyard_common.errors import ConflictError, ProblemError, UnprocessableError, invalid_field
from modelyard_gateway.db import ModelInstance
from modelyard_gateway.destination import DestinationError, destination_of, join
from modelyard_gateway.instances.schemas import InstanceCheck
from modelyard_gateway.instances.service import check_egress
from modelyard_gateway.routing.catalog import build_instance
from modelyard_gateway.routing.engine import RoutingEngine
from modelyard_gateway.routing.repository import publish_check
from modelyard_gateway.routing.upstream import probe
from modelyard_gateway.workspace_rows import require

log = logging.getLogger("modelyard.gateway.instances")

# What `POST /check` answers when the egress policy refuses the destination: the same words and
# no address, whatever the reason (the refusal, with its reason, goes to the log).
CHECK_REFUSED = "The instance's destination is not allowed by the gateway's egress policy."


class TooManyChecksError(ProblemError):
    """`POST /check` called more often than the per-instance limit allows."""

    status, title, slug = 429, "Too Many Requests", "too-many-requests"


class CheckLimiter:
    """At most `burst` manual checks per instance within `window_s` (per replica)."""

    def __init__(self, *, burst: int, window_s: float) -> None:
        self.burst = burst
        self.window_s = window_s
        self._calls: dict[uuid.UUID, deque[float]] = {}

    def take(self, instance_id: uuid.UUID) -> None:
        """Count one check of the instance; raise a 429 problem past the limit."""
        now = time.monotonic()
        if len(self._calls) > 10_000:
            self._calls = {
                k: v for k, v in self._calls.items() if v and v[-1] > now - self.window_s
            }
        calls = self._calls.setdefault(instance_id, deque())
        while calls and calls[0] <= now - self.window_s:
            calls.popleft()
        if len(calls) >= self.burst:
            wait = max(1, math.ceil(calls[0] + self.window_s - now))
            raise TooManyChecksError(
                f"At most {self.burst} checks of one instance per {self.window_s:g} s.",
                headers={"Retry-After": str(wait)},
            )
        calls.append(now)


def get_check_limiter(request: Request) -> CheckLimiter:
    """Return this replica's limiter of manual checks (built by the app's lifespan)."""
    limiter: CheckLimiter = request.app.state.check_limiter
    return limiter


CheckLimiterDep = Annotated[CheckLimiter, Depends(get_check_limiter)]


async def probe_instance(
    session: AsyncSession, *, routing: RoutingEngine, principal: Principal, instance_id: uuid.UUID
) -> InstanceCheck:
    """Return the result of probing an instance now (and share it as a health check).

    The probe is the routing's health check (its settings' path, timeout and threshold), made
    with its client, secrets and egress policy.
    """
    settings = routing.settings
    default_path = settings.health_path
    row = await require(session, ModelInstance, workspace=principal.workspace, row_id=instance_id)
    path = default_path if row.health_path is None else row.health_path
    try:
        # Names are resolved again: what was allowed when it was saved may point elsewhere now.
        await check_egress(routing.egress, destination_of(row))
        route = build_instance(row, routing.box)
        url = join(route.base_url, path or default_path)
    except (UnprocessableError, DestinationError) as exc:
        # Refused before any connection, in one shape whatever the target: no port scanner.
        log.warning("check of instance %s refused: %s", row.id, exc)
        raise invalid_field(
            CHECK_REFUSED, ["body"], message=CHECK_REFUSED, type="egress_refused"
        ) from None
    except UnicodeEncodeError as exc:  # stored before header values were limited to Latin-1
        raise ConflictError(
            "The instance has a header value that is not Latin-1 text; set its headers again."
        ) from exc
    result = await probe(
        routing.client, route, path=path or default_path, timeout_s=settings.health_timeout_s
    )
    await publish_check(
        routing.engine,
        row.id,
        ok=result.ok,
        reason=f"health check: {result.code}" if not result.ok else "",
        threshold=settings.health_failures,
    )
    # The outcome as a fixed word (`connect_failed`, `timeout`, `http_status`, ...): never the
    # transport's text, which would tell a closed port from a filtered one in its own words.
    return InstanceCheck(
        ok=result.ok,
        latency_ms=round(result.latency_ms, 3),
        status_code=result.status,
        error=None if result.ok else result.code,
        url=url,
    )
