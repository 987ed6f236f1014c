"""HTTP conventions: ETag / If-Match for updates, Idempotency-Key for creates."""

from __future__ import annotations

import hashlib
import inspect
import json
import re
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Any
from urllib.parse import quote

from fastapi import Header
from fastapi.responses import JSONResponse
from pydantic import BaseModel, SecretBytes, SecretStr
from pydantic_core import to_jsonable_python
from sqlalchemy import DateTime, Integer, String, func, select, text
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Mapped, mapped_column

from modelyard_common.auth import Principal
from modelyard_common.errors import (
    PreconditionFailedError,
    PreconditionRequiredError,
    UnprocessableError,
    invalid_field,
)
from modelyard_common.routes import Routes

# The caller's own bearer token, forwarded when a service asks another as the caller.
AuthorizationHeader = Annotated[str | None, Header(alias="Authorization", include_in_schema=False)]

IfMatch = Annotated[
    str | None,
    Header(
        alias="If-Match",
        description="The resource's current ETag; required, a stale one is answered 412.",
    ),
]
# A create route's body: given its dependencies by name, it returns what it created.
Creator = Callable[..., Awaitable[BaseModel]]

IdempotencyKey = Annotated[
    str | None,
    Header(
        alias="Idempotency-Key",
        max_length=200,
        description="Retrying a create with the same key returns the first result.",
    ),
]


def attachment(filename: str) -> str:
    """Return a `Content-Disposition` value for a download named `filename` (RFC 6266).

    Any name is safe: the plain `filename` is an ASCII stand-in without quotes or controls, and
    `filename*` carries the real name percent-encoded, so a header can never break or fail.
    """
    fallback = "".join(c if " " <= c <= "~" and c not in '"\\' else "_" for c in filename)
    encoded = quote(filename, safe="")
    return f"attachment; filename=\"{fallback or 'download'}\"; filename*=UTF-8''{encoded}"


def make_etag(revision: int) -> str:
    """Return the strong ETag of a resource revision."""
    return f'"{revision}"'


def check_if_match(if_match: str | None, revision: int) -> None:
    """Raise unless `if_match` names the current revision (or is `*`)."""
    if if_match is None or not if_match.strip():
        raise PreconditionRequiredError(
            "Send the resource's ETag in If-Match so a concurrent change is not overwritten."
        )
    candidates = {tag.strip().removeprefix("W/") for tag in if_match.split(",")}
    if "*" not in candidates and make_etag(revision) not in candidates:
        raise PreconditionFailedError(
            "The resource changed since you read it; fetch it again and reapply your change.",
            current_etag=make_etag(revision),
        )


class IdempotencyRecordMixin:
    """Columns of a service's `idempotency_keys` table.

    A record belongs to the caller who made it (`subject`): another caller sending the same key
    is a new request, authorized as such, never a replay of someone else's answer.
    """

    workspace: Mapped[str] = mapped_column(String(100), primary_key=True)
    operation: Mapped[str] = mapped_column(String(100), primary_key=True)
    key: Mapped[str] = mapped_column(String(200), primary_key=True)
    subject: Mapped[str] = mapped_column(String(200), primary_key=True)
    request_hash: Mapped[str] = mapped_column(String(64))
    status_code: Mapped[int] = mapped_column(Integer)
    body: Mapped[dict[str, Any]] = mapped_column(JSONB)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


def idempotency_keys_ddl(schema: str) -> list[str]:
    """Return the idempotent DDL of a service's `idempotency_keys` table (as the mixin maps it).

    `subject` comes last: it was added to the first tables later (`idempotency_subject_ddl`).
    """
    return [
        f"""CREATE TABLE IF NOT EXISTS {schema}.idempotency_keys (
            workspace varchar(100) NOT NULL,
            operation varchar(100) NOT NULL,
            key varchar(200) NOT NULL,
            request_hash varchar(64) NOT NULL,
            status_code integer NOT NULL,
            body jsonb NOT NULL,
            created_at timestamptz NOT NULL DEFAULT now(),
            subject varchar(200) NOT NULL,
            CONSTRAINT pk_idempotency_keys PRIMARY KEY (workspace, operation, key, subject)
        )""",
    ]


def idempotency_subject_ddl(schema: str, *, upgrade: bool = True) -> list[str]:
    """Return the statements scoping a service's `idempotency_keys` records to their caller.

    Each service's migration runs them on its own schema. Existing records are dropped: they
    name no caller, their hashes predate secret-aware fingerprints, and they expire in a day.
    A table created with its `subject` already (`idempotency_keys_ddl`) comes out the same.
    """
    table = f'"{schema}".idempotency_keys'
    columns = "workspace, operation, key, subject" if upgrade else "workspace, operation, key"
    return [
        f"DELETE FROM {table}",
        f"ALTER TABLE {table} DROP CONSTRAINT pk_idempotency_keys",
        f"ALTER TABLE {table} ADD COLUMN IF NOT EXISTS subject varchar(200) NOT NULL"
        if upgrade
        else f"ALTER TABLE {table} DROP COLUMN subject",
        f"ALTER TABLE {table} ADD CONSTRAINT pk_idempotency_keys PRIMARY KEY ({columns})",
    ]


SECRET_WITHHELD_HEADER = "Idempotent-Secret-Withheld"


@dataclass(frozen=True)
class StoredResponse:
    status_code: int
    body: dict[str, Any]
    replayed: bool
    # Secret fields a replay cannot show again (the record never held them): answered as null.
    withheld: tuple[str, ...] = ()


def without_secrets(body: dict[str, Any], secret_fields: Sequence[str]) -> dict[str, Any]:
    """Return `body` with its secret fields set to null (what an idempotency record may hold)."""
    return {name: (None if name in secret_fields else value) for name, value in body.items()}


def _reveal(value: Any) -> Any:
    if isinstance(value, SecretStr):
        return value.get_secret_value()
    if isinstance(value, SecretBytes):
        return value.get_secret_value().hex()
    return to_jsonable_python(value, fallback=str)


def request_fingerprint(payload: Any, *, scope: str = "") -> str:
    """Return a stable hash of a whole request body, its secret fields included.

    Secrets count (the same key sent with another token is another request) but are never
    stored: only this hash is, salted with the record's `scope` (workspace, operation, key,
    caller) so equal requests of different records do not share a hash.
    """
    if isinstance(payload, BaseModel):
        payload = payload.model_dump(mode="python")
    raw = json.dumps(payload, sort_keys=True, separators=(",", ":"), default=_reveal)
    return hashlib.sha256(f"{scope}\x00{raw}".encode()).hexdigest()


def idempotency_scope(*, workspace: str, operation: str, key: str, subject: str) -> str:
    """Return what identifies one idempotency record (and salts its fingerprint)."""
    return json.dumps([workspace, operation, key, subject])


def _reused_key() -> UnprocessableError:
    return invalid_field(
        "This Idempotency-Key was used with a different request body.",
        ["header", "Idempotency-Key"],
        message="reused with a different body",
        type="idempotency_key_reused",
    )


async def run_idempotent(
    session: AsyncSession,
    model: type[IdempotencyRecordMixin],
    *,
    principal: Principal,
    operation: str,
    key: str | None,
    payload: Any,
    create: Callable[[], Awaitable[BaseModel]],
    status_code: int = 201,
    secret_fields: Sequence[str] = (),
    authorize: Callable[[], Awaitable[None]] | None = None,
) -> StoredResponse:
    """Run `create` once per idempotency key and caller; a retry gets the first response back.

    Records are scoped to the caller (`principal`: its workspace and subject). Another caller
    sending the same key and body finds no record: theirs is a fresh request, which `create`
    authorizes as any other (a viewer replaying an admin's key gets the viewer's 403/404, not
    the admin's resource). `authorize`, when given, runs before a replay, so a caller who lost
    the right to the act since the first request is refused on its retry too.

    The fingerprint covers the whole `payload`, secret fields included (hashed, never stored):
    the same key with any other body is a 422.

    `secret_fields` name the fields of the response that carry a secret shown only once (a
    device token, an API key): the record stores the response without them, so a replay
    answers them as null and lists them in `StoredResponse.withheld`
    (header `Idempotent-Secret-Withheld`).
    """
    if key is None:
        result = await create()
        return StoredResponse(status_code, result.model_dump(mode="json"), replayed=False)
    record = {
        "workspace": principal.workspace,
        "operation": operation,
        "key": key,
        "subject": principal.sub,
    }
    scope = idempotency_scope(**record)
    fingerprint = request_fingerprint(payload, scope=scope)
    # Serialise concurrent retries of one key: the second waits, then sees the first's record.
    await session.execute(
        text("SELECT pg_advisory_xact_lock(hashtext(:k))"), {"k": f"idempotency:{scope}"}
    )
    stored = await session.scalar(select(model).filter_by(**record))
    if stored is not None:
        if stored.request_hash != fingerprint:
            raise _reused_key()
        if authorize is not None:
            await authorize()
        withheld = tuple(name for name in secret_fields if name in stored.body)
        # Records written before a route declared its secrets may still hold them: never replay.
        body = without_secrets(stored.body, secret_fields)
        return StoredResponse(stored.status_code, body, replayed=True, withheld=withheld)
    result = await create()
    body = result.model_dump(mode="json")
    session.add(
        model(  # type: ignore[call-arg]
            **record,
            request_hash=fingerprint,
            status_code=status_code,
            body=without_secrets(body, secret_fields),
        )
    )
    return StoredResponse(status_code, body, replayed=False)


def created_response(stored: StoredResponse, *, location: str | None = None) -> JSONResponse:
    """Return the (first) response of an idempotent create, with ETag and Location if known."""
    headers: dict[str, str] = {}
    if isinstance(stored.body.get("etag"), str):
        headers["ETag"] = stored.body["etag"]
    if location:
        headers["Location"] = location
    if stored.replayed:
        headers["Idempotent-Replayed"] = "true"
    if stored.withheld:
        headers[SECRET_WITHHELD_HEADER] = ", ".join(stored.withheld)
    return JSONResponse(stored.body, status_code=stored.status_code, headers=headers)


@dataclass(frozen=True)
class IdempotentCreates:
    """One service's idempotent creates, written once: run once per key and caller, answer 201.

    The record table is the service's own `IdempotencyRecord`, bound here once in the
    service's `deps.py` (`creates = IdempotentCreates(IdempotencyRecord)`). A create route is
    declared with `route`, and its body is only the creating:

        @creates.route(
            keys, "create_key", "Create a client API key", problems=(401, 403, 422),
            response_model=KeyCreated, location="/v1/keys/{id}", secret_fields=("key",),
        )
        async def create_key(
            session: SessionDep, principal: Operator, body: KeyCreate
        ) -> KeyCreated:
            return await service.create_key(session, principal=principal, body=body)

    `respond` is the same for a route that must do more around the record (authorize a
    replay, reach the session through another dependency).
    """

    model: type[IdempotencyRecordMixin]

    async def respond(
        self,
        session: AsyncSession,
        *,
        principal: Principal,
        operation: str,
        key: str | None,
        body: Any,
        create: Callable[[], Awaitable[BaseModel]],
        location: str | None = None,
        path: Mapping[str, Any] | None = None,
        status_code: int = 201,
        secret_fields: Sequence[str] = (),
        authorize: Callable[[], Awaitable[None]] | None = None,
    ) -> JSONResponse:
        """Run `create` once per key and caller (`run_idempotent`) and answer its 201.

        `location` is formatted with the created fields (`{id}`) and, where given, `path`'s.
        """
        stored = await run_idempotent(
            session,
            self.model,
            principal=principal,
            operation=operation,
            key=key,
            payload=body,
            create=create,
            status_code=status_code,
            secret_fields=secret_fields,
            authorize=authorize,
        )
        where = location.format_map({**(path or {}), **stored.body}) if location else None
        return created_response(stored, location=where)

    def route(
        self,
        routes: Routes,
        operation_id: str,
        summary: str,
        *,
        location: str | None = None,
        secret_fields: Sequence[str] = (),
        **options: Any,
    ) -> Callable[[Creator], Creator]:
        """Return a decorator declaring its `create` as the idempotent POST on `routes`.

        `create` takes `session`, `principal` and `body` by those names, with any other
        dependency or path parameter, and returns the created resource. The endpoint FastAPI
        sees is `create`'s signature plus the `Idempotency-Key` header; it answers 201 with
        ETag and `location` (formatted with the path parameters and the created fields).
        The record's operation is the operation id, scoped by the router's path parameters
        (`link_model:<system_id>`): one key may create under two systems.
        """
        scope = re.findall(r"{(\w+)}", routes.router.prefix)

        def declare(create: Creator) -> Creator:
            signature = inspect.signature(create, eval_str=True)
            header = inspect.Parameter(
                "idempotency_key",
                inspect.Parameter.KEYWORD_ONLY,
                default=None,
                annotation=IdempotencyKey,
            )

            async def endpoint(
                idempotency_key: str | None = None, **arguments: Any
            ) -> JSONResponse:
                return await self.respond(
                    arguments["session"],
                    principal=arguments["principal"],
                    operation=":".join([operation_id, *(str(arguments[n]) for n in scope)]),
                    key=idempotency_key,
                    body=arguments["body"],
                    create=lambda: create(**arguments),
                    location=location,
                    path=arguments,
                    secret_fields=secret_fields,
                )

            endpoint.__signature__ = signature.replace(  # type: ignore[attr-defined]
                parameters=[*signature.parameters.values(), header]
            )
            endpoint.__name__ = create.__name__
            endpoint.__qualname__ = create.__qualname__
            endpoint.__module__ = create.__module__
            endpoint.__doc__ = create.__doc__
            routes.creating(operation_id, summary, **options)(endpoint)
            return create

        return declare
