"""Instance secrets at rest: sealing what the API receives, and re-sealing under a new key."""

from __future__ import annotations

from dataclasses import dataclass

from pydantic import SecretStr
from sqlalchemy.ext.asyncio import AsyncSession

from modelyard_gateway.crypto import SecretBox
from modelyard_gateway.db import announce_config_change
from modelyard_gateway.instances import repository
from modelyard_gateway.instances.validation import looks_like_credential


def seal(box: SecretBox, secret: SecretStr | None) -> str | None:
    """Return the secret sealed under the newest key (None when not given or empty)."""
    if secret is None or not secret.get_secret_value():
        return None
    return box.seal(secret.get_secret_value())


def seal_headers(
    box: SecretBox, headers: dict[str, SecretStr] | None
) -> tuple[str | None, list[str]]:
    """Return the headers sealed together, and their names (what readers may see)."""
    if not headers:
        return None, []
    plain = {name: value.get_secret_value() for name, value in headers.items()}
    return box.seal_headers(plain), sorted(plain)


@dataclass(frozen=True)
class ResealReport:
    """What `reseal_secrets` did."""

    instances: int
    resealed: int
    moved_headers: int


async def reseal_secrets(session: AsyncSession, *, box: SecretBox) -> ResealReport:
    """Return what changed after sealing every stored secret under the newest key.

    Also moves credential-looking `extra_headers` (stored in clear by earlier versions) into
    the sealed `secret_headers`. Raises ValueError (and changes nothing, the caller rolls back)
    if a secret opens with none of the configured keys.
    """
    rows = await repository.all_for_update(session)
    resealed = moved = 0
    for row in rows:
        for column in ("token_sealed", "proxy_password_sealed", "secret_headers_sealed"):
            sealed = getattr(row, column)
            if sealed is not None and not box.is_current(sealed):
                setattr(row, column, box.reseal(sealed))
                resealed += 1
        plain = dict(row.extra_headers or {})
        credentials = {name: value for name, value in plain.items() if looks_like_credential(name)}
        if credentials:
            secret = (
                box.open_headers(row.secret_headers_sealed) if row.secret_headers_sealed else {}
            )
            secret.update(credentials)
            row.secret_headers_sealed = box.seal_headers(secret)
            row.secret_header_names = sorted(secret)
            row.extra_headers = {n: v for n, v in plain.items() if n not in credentials}
            row.revision += 1
            moved += len(credentials)
    await session.flush()
    if resealed or moved:
        await announce_config_change(session)
    return ResealReport(instances=len(rows), resealed=resealed, moved_headers=moved)
