"""What the gateway's admin routers share besides `modelyard_common.routes`: creates, filters.

Foundation: imports no feature. The session is `modelyard_common.db.SessionDep`, principals and
roles are `modelyard_common.auth`'s; each feature reads its own handles from `app.state`.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Query

from modelyard_common.http import IdempotentCreates
from modelyard_gateway.db import IdempotencyRecord

# Creates accept `Idempotency-Key`: a retry answers the first result (records per caller).
creates = IdempotentCreates(IdempotencyRecord)

# The `enabled` filter of the lists of things an admin switches on and off (groups, instances).
EnabledFilter = Annotated[bool | None, Query(description="Only enabled (or disabled) ones.")]
