"""Bearer auth for people: OpenID Connect access tokens (HS256 dev tokens in dev); role checks.

A token is verified in one of two ways: RS256/ES256 (or any configured asymmetric algorithm)
against the configured issuer's JWKS (discovered, cached, refetched when an unknown key id
shows up, so a rotated signing key works without a restart), or, only when `MODELYARD_ENV=dev`,
HS256 with the shared development secret. Verified claims become a `Principal` in exactly one
place, `principal_from_claims`, through a configurable claim mapping.

A client sends the same token with every call until it expires, so a verified token's claims
are kept (`VerifiedTokens`) for `MODELYARD_TOKEN_CACHE_S` (never past the token's `exp`): the
signature check, and for OpenID tokens the JWKS lookup on a worker thread, happen once per
token and period instead of once per request. When the issuer's key set is read with other
key ids (a key rotated in or withdrawn), every kept token is forgotten and checked again.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from enum import IntEnum
from typing import TYPE_CHECKING, Annotated, Any

import httpx
import jwt
from cachetools import TLRUCache
from fastapi import Depends, Header, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from modelyard_common.errors import ForbiddenError, ServiceUnavailableError, UnauthorizedError

if TYPE_CHECKING:
    from fastapi import FastAPI

    from modelyard_common.settings import ServiceSettings

ALGORITHM = "HS256"
WORKSPACE_HEADER = "X-Modelyard-Workspace"
OPERATOR = "operator"
MAX_WORKSPACE_CHARS = 100
MAX_CLAIM_CHARS = 200


class Role(IntEnum):
    """Workspace roles; a higher role can do all a lower one can."""

    viewer = 1
    editor = 2
    admin = 3


@dataclass(frozen=True)
class Principal:
    """The person (or service) behind a request, acting in one workspace."""

    sub: str
    workspace: str
    roles: frozenset[str] = field(default_factory=frozenset)
    # Every workspace the token grants; `workspace` is the one this request acts in.
    workspaces: frozenset[str] = field(default_factory=frozenset, compare=False)

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

    @property
    def is_operator(self) -> bool:
        """Return whether the principal may say where traffic goes (admin or `operator`)."""
        return self.has_role(Role.admin) or OPERATOR in self.roles


@dataclass(frozen=True)
class ClaimMapping:
    """Which claims hold the subject, the workspaces and the roles (dotted paths allowed)."""

    sub: str = "sub"
    workspaces: str = "workspaces"
    roles: str = "roles"
    role_prefix: str = ""

    @classmethod
    def from_settings(cls, settings: ServiceSettings) -> ClaimMapping:
        """Return the mapping configured with MODELYARD_OIDC_*_CLAIM."""
        return cls(
            sub=settings.oidc_sub_claim,
            workspaces=settings.oidc_workspaces_claim,
            roles=settings.oidc_roles_claim,
            role_prefix=settings.oidc_role_prefix,
        )


# `modelyard dev-token` writes these claims.
DEV_MAPPING = ClaimMapping()


def claim_at(claims: Mapping[str, Any], path: str) -> Any:
    """Return the claim at `path`: a literal key first (Auth0's URL claims), else a dotted walk."""
    if path in claims:
        return claims[path]
    value: Any = claims
    for part in path.split("."):
        if not isinstance(value, Mapping) or part not in value:
            return None
        value = value[part]
    return value


def _strings(value: Any) -> list[str]:
    if isinstance(value, str):
        return [value] if value else []
    if isinstance(value, list | tuple):
        return [item for item in value if isinstance(item, str) and item]
    return []


def principal_from_claims(
    claims: Mapping[str, Any], *, mapping: ClaimMapping, requested_workspace: str | None
) -> Principal:
    """Return the principal of verified claims acting in the requested (or only) workspace.

    Roles apply in every granted workspace; a role written `workspace:role` only in that one.
    """
    sub = claim_at(claims, mapping.sub)
    if not isinstance(sub, str) or not sub:
        raise UnauthorizedError(f"The token has no '{mapping.sub}' claim.")
    workspaces = _strings(claim_at(claims, mapping.workspaces))
    if not workspaces:
        raise UnauthorizedError(f"The token names no workspace (claim '{mapping.workspaces}').")
    if requested_workspace is not None:
        if requested_workspace not in workspaces:
            raise ForbiddenError(
                f"The token does not grant workspace '{requested_workspace}'.",
                workspaces=sorted(workspaces),
            )
        workspace = requested_workspace
    elif len(workspaces) == 1:
        workspace = workspaces[0]
    else:
        raise ForbiddenError(
            f"The token grants several workspaces: choose one with the {WORKSPACE_HEADER} header.",
            workspaces=sorted(workspaces),
        )
    roles: set[str] = set()
    for raw in _strings(claim_at(claims, mapping.roles)):
        role = raw.removeprefix(mapping.role_prefix) if mapping.role_prefix else raw
        scope, sep, scoped_role = role.rpartition(":")
        if not sep:
            roles.add(role)
        elif scope == workspace:
            roles.add(scoped_role)
    return Principal(
        sub=sub, workspace=workspace, roles=frozenset(roles), workspaces=frozenset(workspaces)
    )


def issue_token(
    *,
    secret: str,
    sub: str,
    roles: list[str],
    workspace: str,
    ttl: timedelta = timedelta(hours=12),
    audience: str | None = None,
    workspaces: list[str] | None = None,
) -> str:
    """Return a signed HS256 development JWT for a principal (accepted only in dev mode)."""
    now = datetime.now(UTC)
    claims: dict[str, Any] = {
        "sub": sub,
        "roles": roles,
        "workspace": workspace,
        "workspaces": workspaces or [workspace],
        "iat": now,
        "nbf": now,
        "exp": now + ttl,
    }
    if audience:
        claims["aud"] = audience
    return jwt.encode(claims, secret, algorithm=ALGORITHM)


def _dev_claims(token: str, *, secret: str, audience: str | None) -> dict[str, Any]:
    try:
        # Only HS256 is accepted here: `alg: none` and algorithm confusion fail.
        claims: dict[str, Any] = jwt.decode(
            token,
            secret,
            algorithms=[ALGORITHM],
            audience=audience,
            options={"require": ["sub", "exp"], "verify_aud": audience is not None},
        )
    except jwt.ExpiredSignatureError as exc:
        raise UnauthorizedError("The token has expired.") from exc
    except jwt.PyJWTError as exc:
        raise UnauthorizedError(f"The token is invalid: {exc}.") from exc
    if "workspaces" not in claims and "workspace" in claims:
        claims["workspaces"] = claims["workspace"]
    return claims


def decode_token(
    token: str,
    *,
    secret: str,
    audience: str | None = None,
    requested_workspace: str | None = None,
) -> Principal:
    """Return the principal of a valid HS256 development token; raise UnauthorizedError."""
    claims = _dev_claims(token, secret=secret, audience=audience)
    return principal_from_claims(
        claims, mapping=DEV_MAPPING, requested_workspace=requested_workspace
    )


class OidcVerifier:
    """Verifies access tokens of one OpenID issuer against its (cached) JWKS."""

    def __init__(self, settings: ServiceSettings) -> None:
        if not settings.oidc_issuer or not settings.oidc_audience:
            raise ValueError("an OpenID verifier needs an issuer and an audience")
        self.issuer = settings.oidc_issuer
        self.audience = settings.oidc_audience
        self.algorithms = list(settings.oidc_algorithms)
        self._jwks_url = settings.oidc_jwks_url
        self._leeway = settings.oidc_leeway_s
        self._cache_s = settings.oidc_jwks_cache_s
        self._cooldown_s = settings.oidc_jwks_refresh_cooldown_s
        self._timeout_s = settings.oidc_http_timeout_s
        self._client: jwt.PyJWKClient | None = None
        self._lock = asyncio.Lock()
        # The key ids of the issuer's key set as last read, and what to do when they change
        # (the token verifier forgets the tokens it trusts: a withdrawn key's are refused).
        self.key_ids: frozenset[str] | None = None
        self.on_keys_changed: Callable[[], None] | None = None

    async def _discover_jwks_url(self) -> str:
        url = self.issuer.rstrip("/") + "/.well-known/openid-configuration"
        try:
            async with httpx.AsyncClient(timeout=self._timeout_s) as http:
                response = await http.get(url)
                response.raise_for_status()
                document = response.json()
        except (httpx.HTTPError, ValueError) as exc:
            raise ServiceUnavailableError(
                "The identity provider's discovery document cannot be read now."
            ) from exc
        # OpenID Connect Discovery 1.0, section 4.3: the document must name this very issuer.
        if not isinstance(document, dict) or document.get("issuer") != self.issuer:
            raise ServiceUnavailableError(
                "The identity provider's discovery document names another issuer."
            )
        jwks_uri = document.get("jwks_uri")
        if not isinstance(jwks_uri, str):
            raise ServiceUnavailableError("The identity provider publishes no jwks_uri.")
        return jwks_uri

    async def jwks_client(self) -> jwt.PyJWKClient:
        """Return the JWKS client (the discovery document is read on first use)."""
        if self._client is None:
            async with self._lock:
                if self._client is None:
                    url = self._jwks_url or await self._discover_jwks_url()
                    self._client = jwt.PyJWKClient(
                        url,
                        cache_jwk_set=True,
                        lifespan=self._cache_s,
                        cooldown_duration=self._cooldown_s,
                        timeout=self._timeout_s,
                    )
        return self._client

    async def verify(self, token: str) -> dict[str, Any]:
        """Return the claims of a token the issuer signed for our audience; raise otherwise."""
        client = await self.jwks_client()
        try:
            # PyJWKClient fetches over blocking urllib (only on a cache miss): keep it off the loop.
            signing_key, key_ids = await asyncio.to_thread(_signing_key, client, token)
        except jwt.PyJWKClientConnectionError as exc:
            raise ServiceUnavailableError(
                "The identity provider's keys cannot be read now."
            ) from exc
        except jwt.PyJWKClientError as exc:
            raise UnauthorizedError("The token is not signed by a key of the issuer.") from exc
        except jwt.PyJWTError as exc:
            raise UnauthorizedError(f"The token is invalid: {exc}.") from exc
        if key_ids != self.key_ids:
            if self.key_ids is not None and self.on_keys_changed is not None:
                self.on_keys_changed()
            self.key_ids = key_ids
        try:
            claims: dict[str, Any] = jwt.decode(
                token,
                signing_key.key,
                algorithms=self.algorithms,
                audience=self.audience,
                issuer=self.issuer,
                leeway=self._leeway,
                options={"require": ["exp", "iss", "aud"]},
            )
        except jwt.ExpiredSignatureError as exc:
            raise UnauthorizedError("The token has expired.") from exc
        except jwt.ImmatureSignatureError as exc:
            raise UnauthorizedError("The token is not valid yet.") from exc
        except jwt.InvalidAudienceError as exc:
            raise UnauthorizedError("The token is for another audience.") from exc
        except jwt.InvalidIssuerError as exc:
            raise UnauthorizedError("The token is from another issuer.") from exc
        except jwt.PyJWTError as exc:
            raise UnauthorizedError(f"The token is invalid: {exc}.") from exc
        return claims


class VerifiedTokens:
    """Tokens whose signature and claims were verified, each trusted until a deadline.

    The deadline is `ttl_s` after the check or the token's `exp`, whichever comes first; a
    token without a numeric `exp` is not kept. At most `size` tokens are kept (past their
    deadline first, then the least recently used). Refusals are never kept: a bad token is
    checked, and refused, every time.
    """

    def __init__(
        self, ttl_s: float, size: int = 4096, clock: Callable[[], float] = time.time
    ) -> None:
        self.ttl_s = ttl_s
        self._clock = clock
        # token -> (deadline, claims, mapping); the cache drops an entry at its deadline.
        self._entries: TLRUCache[str, tuple[float, dict[str, Any], ClaimMapping]] = TLRUCache(
            maxsize=size, ttu=lambda _token, entry, _now: entry[0], timer=clock
        )

    def __len__(self) -> int:
        return len(self._entries)

    def clear(self) -> None:
        """Forget every kept token (the issuer's keys changed)."""
        self._entries.clear()

    def get(self, token: str) -> tuple[dict[str, Any], ClaimMapping] | None:
        """Return the kept claims and mapping of `token`, or None (unknown or past its time)."""
        entry = self._entries.get(token)
        return None if entry is None else (entry[1], entry[2])

    def put(self, token: str, claims: dict[str, Any], mapping: ClaimMapping) -> None:
        """Keep a verified token's claims (not when caching is off or it expires now)."""
        exp = claims.get("exp")
        if self.ttl_s <= 0 or isinstance(exp, bool) or not isinstance(exp, int | float):
            return
        now = self._clock()
        until = min(now + self.ttl_s, float(exp))
        if until > now:
            self._entries[token] = (until, claims, mapping)


def _signing_key(client: jwt.PyJWKClient, token: str) -> tuple[jwt.PyJWK, frozenset[str]]:
    """Return the key that signed `token` and the ids of the key set it came from."""
    key = client.get_signing_key_from_jwt(token)
    return key, frozenset(k.key_id for k in client.get_jwk_set().keys if k.key_id)


class TokenVerifier:
    """Turns a bearer token into a principal as the service's settings say."""

    def __init__(self, settings: ServiceSettings) -> None:
        self.settings = settings
        self.mapping = ClaimMapping.from_settings(settings)
        self.oidc = OidcVerifier(settings) if settings.oidc_issuer else None
        self.verified = VerifiedTokens(settings.token_cache_s)
        if self.oidc is not None:
            self.oidc.on_keys_changed = self.verified.clear

    async def principal(self, token: str, *, requested_workspace: str | None) -> Principal:
        """Return the principal of a valid token, acting in the requested workspace."""
        kept = self.verified.get(token)
        if kept is None:
            claims, mapping = await self._verify(token)
            self.verified.put(token, claims, mapping)
        else:
            claims, mapping = kept
        return principal_from_claims(
            claims, mapping=mapping, requested_workspace=requested_workspace
        )

    async def _verify(self, token: str) -> tuple[dict[str, Any], ClaimMapping]:
        """Return the claims of a valid token and the mapping that reads them; raise 401."""
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError as exc:
            raise UnauthorizedError(f"The token is invalid: {exc}.") from exc
        if header.get("alg") == ALGORITHM:
            if self.settings.env != "dev":
                raise UnauthorizedError(
                    "HS256 development tokens are accepted only when MODELYARD_ENV=dev."
                )
            claims = _dev_claims(
                token, secret=self.settings.jwt_secret, audience=self.settings.jwt_audience
            )
            mapping = DEV_MAPPING
        elif self.oidc is None:
            raise UnauthorizedError("No OpenID issuer is configured (MODELYARD_OIDC_ISSUER).")
        else:
            claims = await self.oidc.verify(token)
            mapping = self.mapping
        return claims, mapping


def token_verifier(app: FastAPI) -> TokenVerifier:
    """Return the app's token verifier (made from its settings on first use, then kept)."""
    verifier: TokenVerifier | None = getattr(app.state, "token_verifier", None)
    if verifier is None:
        verifier = TokenVerifier(app.state.settings)
        app.state.token_verifier = verifier
    return verifier


async def authenticate(
    request: Request, token: str, *, requested_workspace: str | None = None
) -> Principal:
    """Return the principal of a person's bearer token sent to this app."""
    if requested_workspace is None:
        requested_workspace = request.headers.get(WORKSPACE_HEADER) or None
    principal = await token_verifier(request.app).principal(
        token, requested_workspace=requested_workspace
    )
    request.state.principal = principal
    return principal


_bearer = HTTPBearer(
    auto_error=False,
    description="An access token of your OpenID issuer (dev: `modelyard dev-token`).",
)


async def current_principal(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
    workspace: Annotated[
        str | None,
        Header(
            alias=WORKSPACE_HEADER,
            max_length=200,
            description="The workspace to act in, among those the token grants "
            "(needed when it grants several).",
        ),
    ] = None,
) -> Principal:
    """Return the principal of the request's bearer token."""
    if credentials is None or credentials.scheme.lower() != "bearer":
        raise UnauthorizedError("A bearer token is required.")
    return await authenticate(request, credentials.credentials, requested_workspace=workspace)


CurrentPrincipal = Annotated[Principal, Depends(current_principal)]


def require_role(role: Role) -> Callable[[Principal], Awaitable[Principal]]:
    """Return a dependency that admits principals holding at least `role`."""

    async def check(principal: CurrentPrincipal) -> Principal:
        if not principal.has_role(role):
            raise ForbiddenError(f"This action needs the {role.name} role.")
        return principal

    return check


async def require_operator(principal: CurrentPrincipal) -> Principal:
    """Admit admins and holders of the `operator` role (they decide where traffic goes)."""
    if not principal.is_operator:
        raise ForbiddenError("This action needs the admin or operator role.")
    return principal


Viewer = Annotated[Principal, Depends(require_role(Role.viewer))]
Editor = Annotated[Principal, Depends(require_role(Role.editor))]
Admin = Annotated[Principal, Depends(require_role(Role.admin))]
Operator = Annotated[Principal, Depends(require_operator)]
