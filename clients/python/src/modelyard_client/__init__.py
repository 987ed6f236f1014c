"""The Modelyard Python SDK.

    from modelyard_client import Modelyard, Endpoints, operations as ops

    with Modelyard(Endpoints(token=TOKEN)) as my:
        model = my.send(ops.create_registry("models", {"name": "m", "learning_type": "supervised"}))
        for device in my.iterate(ops.list_devices(status="online")):
            print(device["name"])

`AsyncModelyard` takes the same calls (`await my.send(...)`, `async for ... in my.iterate(...)`).
Every call is described once in `operations`; creates carry an Idempotency-Key and are retried
with it, reads and deletes are retried on connection errors and 429/502/503/504, and an error
answer raises an `ApiError` holding the service's problem document.
"""

from modelyard_client import operations
from modelyard_client._core import Call, Endpoints, RetryPolicy
from modelyard_client.aio import AsyncModelyard
from modelyard_client.client import Modelyard
from modelyard_client.errors import (
    ApiError,
    BadRequestError,
    ConflictError,
    ForbiddenError,
    ModelyardError,
    NotFoundError,
    PreconditionFailedError,
    ServiceUnavailableError,
    StreamError,
    TransportError,
    UnauthorizedError,
)

__all__ = [
    "ApiError",
    "AsyncModelyard",
    "BadRequestError",
    "Call",
    "ConflictError",
    "Endpoints",
    "ForbiddenError",
    "Modelyard",
    "ModelyardError",
    "NotFoundError",
    "PreconditionFailedError",
    "RetryPolicy",
    "ServiceUnavailableError",
    "StreamError",
    "TransportError",
    "UnauthorizedError",
    "operations",
]
