"""What the request log learns from the proxy's answers (the few points a request ends at)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from modelyard_gateway.proxy.service import Answer, Exhausted, Outcome, StreamAnswer
from modelyard_gateway.requestlog.record import RequestRecord
from modelyard_gateway.routing.catalog import ClientKey, GroupRoute


def begin(key: ClientKey, path: str) -> RequestRecord:
    """Return the record of a request whose key is known (`path` is one of POST_PATHS)."""
    return RequestRecord(workspace=key.workspace, key_id=key.id, endpoint=path[4:])


def requested(record: RequestRecord, request: dict[str, Any]) -> None:
    """Note the model name the client asked for (before it is known to be a group)."""
    name = request.get("model")
    record.group_name = name if isinstance(name, str) else None


def routed(
    record: RequestRecord, group: GroupRoute, raw: bytes, *, stream: bool, body_cap: int
) -> None:
    """Note the group and the stream flag; keep the bodies if the group opts in."""
    record.group_name = group.name
    record.registry_model_id = group.registry_model_id
    record.stream = stream
    if group.log_bodies and body_cap > 0:
        record.capture_bodies(raw, body_cap)


def _tried(earlier: Sequence[Outcome]) -> list[str]:
    return [o.instance for o in earlier if o.tried]


def answered(record: RequestRecord, answer: Answer | StreamAnswer) -> None:
    """Note who answered (after which failed attempts) and, for a complete answer, its usage."""
    record.instances = [*_tried(answer.earlier), answer.instance.name]
    record.attempts = answer.attempts
    record.status = answer.status
    if isinstance(answer, Answer):
        record.usage(answer.usage)
        if answer.status >= 400:
            record.error_cause = f"http_{answer.status // 100}xx"


def exhausted(record: RequestRecord, result: Exhausted) -> None:
    """Note every instance tried and the last failure's code (503 all_instances_failed)."""
    record.instances = _tried(result.outcomes)
    record.attempts = result.attempts
    tried = [o for o in result.outcomes if o.tried] or result.outcomes
    record.ended_with(503, tried[-1].code if tried else "no_instances")
