"""FastAPI dependencies shared by the admin routers."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

from fastapi import Depends, Request
from sqlalchemy.ext.asyncio import AsyncSession

from modelyard_common.db import get_session

if TYPE_CHECKING:
    from modelyard_gateway.runtime.runner import Runtime


def get_runtime(request: Request) -> Runtime:
    """Return the gateway runtime started by the app's lifespan."""
    runtime: Runtime = request.app.state.runtime
    return runtime


RuntimeDep = Annotated["Runtime", Depends(get_runtime)]


# Function scope: the transaction commits when the handler returns, before the response is sent,
# so a client that got 201 reads its write back and a failed commit is reported, not swallowed.
# (FastAPI's default request scope would run the commit after the response went out.)
SessionDep = Annotated[AsyncSession, Depends(get_session, scope="function")]
