"""What the gateway's admin routers share: idempotent creates and answering with an ETag.

Foundation: imports no feature. The session is `modelyard_common.db.SessionDep`, principals and
roles are `modelyard_common.auth`'s; each feature reads its own handles from `app.state`.
"""

from __future__ import annotations

from typing import Protocol, TypeVar

from fastapi import Response

from modelyard_common.http import IdempotentCreates
from modelyard_gateway.db import IdempotencyRecord

# Creates accept `Idempotency-Key`: a retry answers the first result (records per caller).
creates = IdempotentCreates(IdempotencyRecord)


class Versioned(Protocol):
    """An API view that carries its resource's ETag."""

    @property
    def etag(self) -> str: ...


V = TypeVar("V", bound=Versioned)


def with_etag(response: Response, resource: V) -> V:
    """Return `resource`, its ETag set on the response's header."""
    response.headers["ETag"] = resource.etag
    return resource
