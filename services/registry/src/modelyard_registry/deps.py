"""Request dependencies of the registry: its settings, and its idempotent creates bound once."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from modelyard_common.http import IdempotentCreates
from modelyard_registry.db import IdempotencyRecord
from modelyard_registry.settings import RegistrySettings

creates = IdempotentCreates(IdempotencyRecord)
# Every route but the reference lists needs a caller: 401 without a valid token, 403 without
# the role it needs. Routes list these first among their problem responses.
AUTH_PROBLEMS = (401, 403)


def get_settings(request: Request) -> RegistrySettings:
    """Return the running app's settings."""
    settings: RegistrySettings = request.app.state.settings
    return settings


SettingsDep = Annotated[RegistrySettings, Depends(get_settings)]
