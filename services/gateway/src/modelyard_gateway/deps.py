"""FastAPI dependencies shared by the admin routers."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

from fastapi import Depends, Request

from modelyard_common.db import SessionDep

if TYPE_CHECKING:
    from modelyard_gateway.runtime.runner import Runtime


def get_runtime(request: Request) -> Runtime:
    """Return the gateway runtime started by the app's lifespan."""
    runtime: Runtime = request.app.state.runtime
    return runtime


RuntimeDep = Annotated["Runtime", Depends(get_runtime)]

__all__ = ["RuntimeDep", "SessionDep", "get_runtime"]
