"""Development tokens: a JWT signed with MODELYARD_JWT_SECRET, as the services check it."""

from __future__ import annotations

from datetime import timedelta

from modelyard_common.auth import issue_token
from modelyard_common.settings import ServiceSettings


def dev_token(*, sub: str, roles: list[str], workspace: str, ttl_hours: float = 12.0) -> str:
    """Return a dev token for `sub` signed with the configured secret and audience."""
    settings = ServiceSettings()
    return issue_token(
        secret=settings.jwt_secret,
        sub=sub,
        roles=roles,
        workspace=workspace,
        ttl=timedelta(hours=ttl_hours),
        audience=settings.jwt_audience,
    )
