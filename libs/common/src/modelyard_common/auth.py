"""JWT bearer auth for people: subject, roles, workspace; role checks per route."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from enum import IntEnum
from typing import Annotated, Any

import jwt
from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from modelyard_common.errors import ForbiddenError, UnauthorizedError

ALGORITHM = "HS256"
MAX_WORKSPACE_CHARS = 100
MAX_CLAIM_CHARS = 200


class Role(IntEnum):
    """Workspace roles; a higher role can do all a lower one can."""

    viewer = 1
    editor = 2
    admin = 3


@dataclass(frozen=True)
class Principal:
    """The person (or service) behind a request."""

    sub: str
    workspace: str
    roles: frozenset[str] = field(default_factory=frozenset)

    def __post_init__(self) -> None:
        # Claims end up in columns (workspace, created_by, grant subjects): a token whose claims
        # no row can hold is refused here, whichever issuer signed it, not as a failed insert.
        for claim, values, limit in (
            ("workspace", [self.workspace], MAX_WORKSPACE_CHARS),
            ("sub", [self.sub], MAX_CLAIM_CHARS),
            ("roles", self.roles, MAX_CLAIM_CHARS),
        ):
            if any(len(v) > limit or "\x00" in v for v in values):
                raise UnauthorizedError(
                    f"The token's `{claim}` claim is longer than {limit} characters or has a NUL."
                )

    @property
    def role(self) -> Role:
        """Return the highest workspace role the principal holds (viewer at least)."""
        levels = [Role[r] for r in self.roles if r in Role.__members__]
        return max(levels, default=Role.viewer)

    def has_role(self, role: Role) -> bool:
        """Return whether the principal's highest role is at least `role`."""
        return self.role >= role


def issue_token(
    *,
    secret: str,
    sub: str,
    roles: list[str],
    workspace: str,
    ttl: timedelta = timedelta(hours=12),
    audience: str | None = None,
) -> str:
    """Return a signed HS256 JWT for a principal."""
    now = datetime.now(UTC)
    claims: dict[str, Any] = {
        "sub": sub,
        "roles": roles,
        "workspace": workspace,
        "iat": now,
        "nbf": now,
        "exp": now + ttl,
    }
    if audience:
        claims["aud"] = audience
    return jwt.encode(claims, secret, algorithm=ALGORITHM)


def decode_token(token: str, *, secret: str, audience: str | None = None) -> Principal:
    """Return the principal of a valid token; raise UnauthorizedError otherwise."""
    try:
        # Only HS256 is accepted: `alg: none` and algorithm confusion fail here.
        claims = jwt.decode(
            token,
            secret,
            algorithms=[ALGORITHM],
            audience=audience,
            options={"require": ["sub", "exp", "workspace"], "verify_aud": audience is not None},
        )
    except jwt.ExpiredSignatureError as exc:
        raise UnauthorizedError("The token has expired.") from exc
    except jwt.PyJWTError as exc:
        raise UnauthorizedError(f"The token is invalid: {exc}.") from exc
    roles = claims.get("roles") or []
    if isinstance(roles, str):
        roles = [roles]
    workspace = claims.get("workspace")
    if not isinstance(workspace, str) or not workspace:
        raise UnauthorizedError("The token names no workspace.")
    return Principal(sub=str(claims["sub"]), workspace=workspace, roles=frozenset(map(str, roles)))


_bearer = HTTPBearer(auto_error=False, description="A JWT from `modelyard dev-token` or your IdP.")


async def current_principal(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> Principal:
    """Return the principal of the request's bearer token."""
    if credentials is None or credentials.scheme.lower() != "bearer":
        raise UnauthorizedError("A bearer token is required.")
    settings = request.app.state.settings
    principal = decode_token(
        credentials.credentials, secret=settings.jwt_secret, audience=settings.jwt_audience
    )
    request.state.principal = principal
    return principal


CurrentPrincipal = Annotated[Principal, Depends(current_principal)]


def require_role(role: Role) -> Callable[[Principal], Awaitable[Principal]]:
    """Return a dependency that admits principals holding at least `role`."""

    async def check(principal: CurrentPrincipal) -> Principal:
        if not principal.has_role(role):
            raise ForbiddenError(f"This action needs the {role.name} role.")
        return principal

    return check


Viewer = Annotated[Principal, Depends(require_role(Role.viewer))]
Editor = Annotated[Principal, Depends(require_role(Role.editor))]
Admin = Annotated[Principal, Depends(require_role(Role.admin))]
