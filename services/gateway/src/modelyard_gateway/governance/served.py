"""Which registry models an instance serves: the policy gate judges instances, not groups.

An instance made from a deployment's endpoint carries its model (set from the event, never by
the API). A hand-made instance whose address is a device's ingress (learnt from endpoint events)
serves what runs there: the deployment its path leads to, or, when the path leads to none of
them, every deployment at that address (the most careful reading). Names and addresses are
compared after resolving, so a name for the same ingress is the same ingress.
"""

from __future__ import annotations

import ipaddress
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from urllib.parse import urlsplit

from modelyard_gateway.db import DeviceEndpoint, ModelInstance
from modelyard_gateway.egress import resolve

# A deployment instance from before instances carried their model, in no group bound to one:
# what it serves is not known, so it is refused (under any gate but `off`).
UNKNOWN_MODEL = "unknown"
# A hand-made instance pointing at another workspace's device ingress.
OTHER_WORKSPACE = "other-workspace"


@dataclass(frozen=True, slots=True)
class Served:
    """One registry model an instance serves, and the workspace whose approval decides."""

    workspace: str
    model_id: uuid.UUID


@dataclass(frozen=True, slots=True)
class Unservable:
    """An instance that may serve nothing: `why` is UNKNOWN_MODEL or OTHER_WORKSPACE."""

    why: str


def _address(host: str) -> str:
    name = host.strip().strip("[]").rstrip(".").lower()
    try:
        address = ipaddress.ip_address(name)
    except ValueError:
        return name
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return str(address.ipv4_mapped)
    return str(address)


def destination_of(row: ModelInstance) -> tuple[str, int, str] | None:
    """Return (host, port, path) an instance's requests go to (path without a trailing /v1)."""
    if row.kind == "cloud":
        parts = urlsplit(row.base_url or "")
        try:
            port = parts.port
        except ValueError:
            return None
        if not parts.hostname:
            return None
        host = parts.hostname
        port = port or (443 if parts.scheme == "https" else 80)
        path = parts.path
    else:
        if not row.host or row.port is None:
            return None
        host, port, path = row.host, row.port, row.path_prefix or ""
    path = path.rstrip("/")
    if path.endswith("/v1"):
        path = path[:-3]
    return _address(host), port, path


class IngressIndex:
    """Device ingress addresses (host or resolved address, port) and what runs behind them."""

    def __init__(self) -> None:
        self._by_address: dict[tuple[str, int], list[DeviceEndpoint]] = {}
        self._names: dict[str, set[str]] = {}

    async def _resolved(self, host: str) -> set[str]:
        found = self._names.get(host)
        if found is None:
            found = {host}
            try:
                ipaddress.ip_address(host)
            except ValueError:
                found |= {_address(str(a)) for a in await resolve(host, None)}
            self._names[host] = found
        return found

    @classmethod
    async def build(cls, endpoints: Iterable[DeviceEndpoint]) -> IngressIndex:
        """Return the index of these endpoints (names resolved once each)."""
        index = cls()
        for endpoint in endpoints:
            for address in await index._resolved(_address(endpoint.host)):
                index._by_address.setdefault((address, endpoint.port), []).append(endpoint)
        return index

    async def behind(self, host: str, port: int) -> list[DeviceEndpoint]:
        """Return the deployments running at this address (resolved), if it is an ingress."""
        if not self._by_address:
            return []
        found: dict[uuid.UUID, DeviceEndpoint] = {}
        for address in await self._resolved(host):
            for endpoint in self._by_address.get((address, port), []):
                found[endpoint.deployment_id] = endpoint
        return list(found.values())


async def served_by(
    row: ModelInstance, index: IngressIndex, *, group_model: uuid.UUID | None
) -> Sequence[Served] | Unservable:
    """Return the registry models an instance serves (empty: none, it is judged by nobody).

    `group_model` is the model of the group asking, used only for deployment instances written
    before instances carried their model.
    """
    if row.registry_model_id is not None:
        return [Served(row.workspace, row.registry_model_id)]
    if row.deployment_id is not None:
        if group_model is not None:
            return [Served(row.workspace, group_model)]
        return Unservable(UNKNOWN_MODEL)
    destination = destination_of(row)
    if destination is None:
        return []
    host, port, path = destination
    endpoints = await index.behind(host, port)
    if not endpoints:
        return []
    leading = [e for e in endpoints if e.path and (path == e.path or path.startswith(e.path + "/"))]
    chosen = leading or endpoints
    if any(e.workspace is not None and e.workspace != row.workspace for e in chosen):
        return Unservable(OTHER_WORKSPACE)
    return [Served(row.workspace, e.model_id) for e in chosen]
