"""The in-memory routing catalog: groups, instances and API keys, rebuilt on config changes.

The hot path reads only this snapshot; admin writes send NOTIFY on `gateway_config` inside their
transaction, and every replica rebuilds its snapshot when the notification arrives.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import aiohttp
from sqlalchemy.ext.asyncio import AsyncEngine

from modelyard_common.governance import Governance
from modelyard_gateway.crypto import SecretBox, hash_api_key
from modelyard_gateway.db import ApiKey, LimitColumns, ModelInstance
from modelyard_gateway.destination import (
    DestinationError,
    check_base,
    destination_of,
    local_base,
)
from modelyard_gateway.egress import EgressPolicy, EgressRefused
from modelyard_gateway.governance.serving import serve_verdicts
from modelyard_gateway.routing import repository
from modelyard_gateway.routing.fastclient import Target, tls_context

log = logging.getLogger("modelyard.gateway.catalog")

NEGATIVE_KEY_TTL_S = 2.0
NEGATIVE_KEY_MAX = 10_000


def instance_base_url(row: ModelInstance) -> str:
    """Return the URL that an instance's `/v1/...` paths are joined to (a trailing `/v1` dropped).

    Raises DestinationError when the stored parts do not make a safe URL (rows written before
    paths were checked): such an instance is left out of routing and never probed.
    """
    if row.kind == "cloud":
        base = check_base((row.base_url or "").rstrip("/"))
    else:
        if not row.host or row.port is None:
            raise DestinationError("a local instance needs host and port")
        base = local_base(
            protocol=row.protocol, host=row.host, port=row.port, path_prefix=row.path_prefix
        )
    return base[:-3] if base.endswith("/v1") else base


@dataclass(frozen=True, slots=True)
class InstanceRoute:
    """Everything the proxy needs to send one request to one instance."""

    id: uuid.UUID
    workspace: str
    name: str
    base_url: str
    upstream_model: str
    headers: Mapping[str, str]
    proxy_url: str | None
    proxy_headers: Mapping[str, str] | None
    timeout: aiohttp.ClientTimeout
    max_concurrency: int | None
    default_params: Mapping[str, Any]
    param_caps: Mapping[str, float]
    health_path: str | None
    enabled: bool
    target: Target | None = None  # set when the lean client can reach it (no HTTP proxy)
    kind: str = "local"  # `cloud` instances face stricter egress rules (private ranges refused)


ORDERED = "ordered"
WEIGHTED = "weighted"
LEAST_BUSY = "least_busy"
LATENCY = "latency"
_MASK64 = (1 << 64) - 1


@dataclass(slots=True)
class Rotation:
    """What a group's strategy remembers between requests on this replica."""

    # Smooth weighted round robin: each instance's running credit (`weighted`, not sticky).
    credit: list[int] = field(default_factory=list)
    turn: int = 0  # `least_busy`: where ties start, moved on by each request


@dataclass(frozen=True, slots=True)
class GroupRoute:
    """A model group as the proxy sees it: enabled instances in failover order.

    `strategy` decides each request's order of `instances` (`routing.strategies`); the
    weights and salts line up with `instances`.
    """

    id: uuid.UUID
    workspace: str
    name: str
    created: int
    instances: tuple[InstanceRoute, ...]
    registry_model_id: uuid.UUID | None = None  # its usage is counted for this registry model
    # The policy gate on the registry model it follows: a refusal answers clients with 403;
    # a warning (gate `warn`) rides along on every answer.
    refusal: str | None = None
    warning: str | None = None
    log_bodies: bool = False  # the request log keeps its prompts and answers (capped)
    strategy: str = ORDERED
    weights: tuple[int, ...] = ()
    total_weight: int = 0
    salts: tuple[int, ...] = ()  # per instance, for sticky choices every replica agrees on
    sticky_by: str | None = None  # `key` or `header`
    sticky_header: bytes | None = None  # lower case, as ASGI gives header names
    rotation: Rotation = field(default_factory=Rotation)


def strategy_fields(
    stored: Mapping[str, Any] | None,
    instances: Sequence[InstanceRoute],
    earlier: GroupRoute | None,
) -> dict[str, Any]:
    """Return a group route's strategy fields from its stored strategy.

    A reload keeps the rotation of an unchanged group, so a weighted split stays exact.
    """
    stored = stored or {}
    kind = str(stored.get("type") or ORDERED)
    if kind not in (WEIGHTED, LEAST_BUSY, LATENCY):
        return {}
    fields: dict[str, Any] = {"strategy": kind}
    if kind == WEIGHTED:
        given = stored.get("weights") or {}
        default = int(stored.get("default_weight") or 0)
        weights = tuple(int(given.get(str(i.id), default)) for i in instances)
        fields.update(
            weights=weights,
            total_weight=sum(weights),
            salts=tuple(i.id.int & _MASK64 for i in instances),
        )
        sticky = stored.get("sticky") or {}
        if sticky.get("by") in ("key", "header"):
            fields["sticky_by"] = sticky["by"]
            header = sticky.get("header")
            fields["sticky_header"] = header.lower().encode("latin-1") if header else None
    same = (
        earlier is not None
        and earlier.strategy == kind
        and earlier.weights == fields.get("weights", ())
        and [i.id for i in earlier.instances] == [i.id for i in instances]
    )
    if same and earlier is not None:
        fields["rotation"] = earlier.rotation
    else:
        fields["rotation"] = Rotation(credit=[0] * len(instances))
    return fields


@dataclass(frozen=True, slots=True)
class Limits:
    """A key's limits or a workspace's ceiling (None: no limit on that measure)."""

    requests_per_minute: int | None = None
    tokens_per_minute: int | None = None
    tokens_per_day: int | None = None
    tokens_per_month: int | None = None

    @classmethod
    def of(cls, row: LimitColumns) -> Limits | None:
        """Return the limits a row holds, or None when it sets none."""
        limits = cls(
            row.requests_per_minute, row.tokens_per_minute, row.tokens_per_day, row.tokens_per_month
        )
        return limits if limits != NO_LIMITS else None


NO_LIMITS = Limits()


@dataclass(frozen=True, slots=True)
class ClientKey:
    """A non-revoked client API key."""

    id: uuid.UUID
    workspace: str
    groups: frozenset[str] | None
    limits: Limits | None = None
    expires_at: float | None = None  # epoch seconds

    @classmethod
    def of(cls, row: ApiKey) -> ClientKey:
        """Return the routing view of a key row."""
        return cls(
            id=row.id,
            workspace=row.workspace,
            groups=frozenset(row.groups) if row.groups is not None else None,
            limits=Limits.of(row),
            expires_at=row.expires_at.timestamp() if row.expires_at is not None else None,
        )

    def may_use(self, group: str) -> bool:
        """Return whether this key may send requests to `group`."""
        return self.groups is None or group in self.groups


@dataclass(slots=True)
class Snapshot:
    """One consistent view of the routing config."""

    groups: dict[tuple[str, str], GroupRoute] = field(default_factory=dict)
    instances: dict[uuid.UUID, InstanceRoute] = field(default_factory=dict)
    keys: dict[str, ClientKey] = field(default_factory=dict)
    ceilings: dict[str, Limits] = field(default_factory=dict)  # by workspace


def build_instance(row: ModelInstance, box: SecretBox) -> InstanceRoute:
    """Return the routing view of an instance row (secrets decrypted, headers prepared)."""
    headers = {"Content-Type": "application/json", "Accept-Encoding": "identity"}
    headers.update(row.extra_headers or {})
    if row.secret_headers_sealed:
        headers.update(box.open_headers(row.secret_headers_sealed))
    if row.token_sealed:
        headers["Authorization"] = "Bearer " + box.open(row.token_sealed)
    proxy_headers = None
    base_url = instance_base_url(row)
    if row.proxy_username:
        password = box.open(row.proxy_password_sealed) if row.proxy_password_sealed else ""
        proxy_headers = {
            "Proxy-Authorization": aiohttp.encode_basic_auth(row.proxy_username, password)
        }
        if row.proxy_url and base_url.startswith("http://"):
            # A plain-HTTP request goes to the proxy as is (no CONNECT tunnel), so the proxy's
            # credentials travel with it; over a tunnel they stay on the CONNECT only.
            headers.update(proxy_headers)
    return InstanceRoute(
        id=row.id,
        workspace=row.workspace,
        name=row.name,
        base_url=base_url,
        upstream_model=row.upstream_model,
        headers=headers,
        proxy_url=row.proxy_url,
        proxy_headers=proxy_headers,
        timeout=aiohttp.ClientTimeout(
            total=None,
            connect=None,
            sock_connect=row.connect_timeout_s,
            sock_read=row.read_timeout_s,
        ),
        max_concurrency=row.max_concurrency,
        default_params=dict(row.default_params or {}),
        param_caps=dict(row.param_caps or {}),
        health_path=row.health_path,
        enabled=row.enabled,
        target=None if row.proxy_url else fast_target(base_url, headers, kind=row.kind),
        kind=row.kind,
    )


def fast_target(base_url: str, headers: Mapping[str, str], *, kind: str = "local") -> Target | None:
    """Return the lean client's target for a base URL and headers (None if it cannot serve it)."""
    parts = urlsplit(base_url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return None
    tls = parts.scheme == "https"
    port = parts.port or (443 if tls else 80)
    default_port = port == (443 if tls else 80)
    host_header = parts.hostname if default_port else f"{parts.hostname}:{port}"
    if ":" in parts.hostname:  # IPv6 literal
        host_header = f"[{parts.hostname}]" + ("" if default_port else f":{port}")
    lines = [f"Host: {host_header}", "User-Agent: modelyard-gateway"]
    lines += [f"{name}: {value}" for name, value in headers.items()]
    return Target(
        host=parts.hostname,
        port=port,
        tls=tls_context() if tls else None,
        path_prefix=parts.path.rstrip("/").encode(),
        head=("\r\n".join(lines) + "\r\n").encode("latin-1"),
        kind=kind,
    )


class Catalog:
    """Holds the current snapshot and rebuilds it from the database."""

    def __init__(
        self,
        engine: AsyncEngine,
        box: SecretBox,
        *,
        egress: EgressPolicy | None = None,
        governance: Governance | None = None,
    ) -> None:
        self._engine = engine
        self._box = box
        self._egress = egress
        self._governance = governance
        self.snapshot = Snapshot()
        self.version = 0
        self._negative_keys: dict[str, float] = {}
        # One rebuild at a time: two interleaved ones could swap in the older read last.
        self._reloading = asyncio.Lock()

    async def reload(self) -> None:
        """Rebuild the snapshot from the database and swap it in (one rebuild at a time)."""
        async with self._reloading:
            await self._rebuild()

    async def _rebuild(self) -> None:
        rows = await repository.routing_rows(self._engine)
        instance_rows, group_rows, member_rows, key_rows = (
            rows.instances,
            rows.groups,
            rows.members,
            rows.keys,
        )
        snapshot = Snapshot()
        earlier = self.snapshot.groups
        refused = await self._refused_by_egress(instance_rows)
        for inst in instance_rows:
            if inst.id in refused:
                continue
            try:
                snapshot.instances[inst.id] = build_instance(inst, self._box)
            except UnicodeEncodeError:
                # Headers stored before values were limited to Latin-1 text cannot be sent.
                log.error("instance %s left out of routing: a header is not Latin-1", inst.id)
            except DestinationError as exc:
                log.error("instance %s left out of routing: its destination %s", inst.id, exc)
            except ValueError:
                log.error("instance %s has a secret the configured key cannot open", inst.id)
        members: dict[uuid.UUID, list[uuid.UUID]] = {}
        for member in member_rows:
            members.setdefault(member.group_id, []).append(member.instance_id)
        by_id = {row.id: row for row in instance_rows}
        verdicts, judged = await serve_verdicts(
            self._engine, self._governance, group_rows, members, by_id, rows.endpoints
        )
        for group in group_rows:
            if not group.enabled:
                continue
            routes: list[InstanceRoute] = []
            refusals: list[str] = []
            warnings: list[str] = []
            for i in members.get(group.id, []):
                route = snapshot.instances.get(i)
                if route is None or not route.enabled:
                    continue
                said = judged.get((group.id, i), {})
                if said.get("refusal"):
                    # Judged as the model it serves, in this group: not asked at all.
                    refusals.append(said["refusal"] or "")
                    continue
                if said.get("warning"):
                    warnings.append(said["warning"] or "")
                routes.append(route)
            verdict = dict(verdicts.get(group.id, {}))
            if not verdict.get("refusal") and not routes and refusals:
                verdict = {"refusal": refusals[0]}
            elif not verdict and warnings:
                verdict = {"warning": warnings[0]}
            snapshot.groups[(group.workspace, group.name)] = GroupRoute(
                id=group.id,
                workspace=group.workspace,
                name=group.name,
                created=int(group.created_at.timestamp()),
                instances=tuple(routes),
                registry_model_id=group.registry_model_id,
                refusal=verdict.get("refusal"),
                warning=verdict.get("warning"),
                **strategy_fields(
                    group.strategy, routes, earlier.get((group.workspace, group.name))
                ),
                log_bodies=group.log_bodies,
            )
        for key in key_rows:
            snapshot.keys[key.key_hash] = ClientKey.of(key)
        for ceiling in rows.ceilings:
            limits = Limits.of(ceiling)
            if limits is not None:
                snapshot.ceilings[ceiling.workspace] = limits
        self.snapshot = snapshot
        self._negative_keys.clear()
        self.version += 1

    async def _refused_by_egress(self, rows: Sequence[ModelInstance]) -> set[uuid.UUID]:
        """Return the instances whose destination (resolved now) the egress policy refuses."""
        if self._egress is None:
            return set()
        egress = self._egress

        async def refused(row: ModelInstance) -> bool:
            try:
                await egress.check_destination(destination_of(row))
            except EgressRefused as exc:
                log.error("instance %s left out of routing: %s", row.id, exc)
                return True
            return False

        verdicts = await asyncio.gather(*(refused(row) for row in rows))
        return {row.id for row, out in zip(rows, verdicts, strict=True) if out}

    async def client_key(self, presented: str) -> ClientKey | None:
        """Return the key matching a presented API key, or None; unknown keys are re-read once."""
        digest = hash_api_key(presented)
        found = self.snapshot.keys.get(digest)
        if found is not None:
            return found
        # A key created a moment ago on another replica may not have reached us yet.
        now = time.monotonic()
        seen = self._negative_keys.get(digest)
        if seen is not None and now - seen < NEGATIVE_KEY_TTL_S:
            return None
        row = await repository.live_key(self._engine, key_hash=digest)
        if row is None:
            if len(self._negative_keys) >= NEGATIVE_KEY_MAX:
                self._negative_keys.clear()
            self._negative_keys[digest] = now
            return None
        key = ClientKey.of(row)
        self.snapshot.keys[digest] = key
        return key

    def groups_for(self, key: ClientKey) -> list[GroupRoute]:
        """Return the enabled groups a key may use, by name."""
        return sorted(
            (
                g
                for (ws, name), g in self.snapshot.groups.items()
                if ws == key.workspace and key.may_use(name)
            ),
            key=lambda g: g.name,
        )
