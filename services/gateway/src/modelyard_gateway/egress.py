"""Where the gateway may connect: the egress policy of instances, their proxies and health checks.

A destination is refused when its host name, or any address the name resolves to, is denied:
always link-local (169.254.0.0/16, fe80::/10, which holds the cloud metadata services) and the
metadata names and addresses of the big clouds; then MODELYARD_GATEWAY_EGRESS_DENY. With
MODELYARD_GATEWAY_EGRESS_ALLOW set, a destination must also be allowed: its host name matches an
allowed name, or every address it resolves to lies in an allowed network.

Strict mode (the default when MODELYARD_ENV=prod, MODELYARD_GATEWAY_EGRESS_STRICT to choose)
adds what a prod gateway must never reach on anybody's say-so: loopback, "this network",
multicast and reserved addresses for every instance; private ranges (RFC 1918, CGNAT, ULA) for
cloud instances; and for local instances (and proxies) private addresses outside the networks an
admin allows (MODELYARD_GATEWAY_EGRESS_LOCAL_NETWORKS, by default every private range, since
model servers live on the local network). A network named in MODELYARD_GATEWAY_EGRESS_ALLOW is
exempt from the strict rules (an admin's explicit choice), never from the always-denied ones.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
import threading
import weakref
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from cachetools import TTLCache

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

ALWAYS_DENIED_NETWORKS: tuple[IPNetwork, ...] = (
    ipaddress.ip_network("169.254.0.0/16"),  # link-local, AWS/GCP/Azure/OCI metadata
    ipaddress.ip_network("fe80::/10"),  # IPv6 link-local
    ipaddress.ip_network("fd00:ec2::254/128"),  # AWS metadata over IPv6
    ipaddress.ip_network("100.100.100.200/32"),  # Alibaba Cloud metadata
    ipaddress.ip_network("0.0.0.0/32"),  # "this host": reaches loopback services on Linux
    ipaddress.ip_network("::/128"),
)
# Never reachable in strict mode, whatever the kind of instance.
STRICT_DENIED_NETWORKS: tuple[IPNetwork, ...] = (
    ipaddress.ip_network("127.0.0.0/8"),  # loopback: the gateway's own host and its sidecars
    ipaddress.ip_network("::1/128"),
    ipaddress.ip_network("0.0.0.0/8"),  # "this network"
    ipaddress.ip_network("224.0.0.0/4"),  # multicast
    ipaddress.ip_network("240.0.0.0/4"),  # reserved, broadcast
    ipaddress.ip_network("ff00::/8"),
    ipaddress.ip_network("64:ff9b::/96"),  # NAT64: would wrap any IPv4 address above
    ipaddress.ip_network("2002::/16"),  # 6to4: likewise
)
# Private ranges: refused for cloud instances; local ones reach those an admin allows.
PRIVATE_NETWORKS: tuple[IPNetwork, ...] = (
    ipaddress.ip_network("10.0.0.0/8"),
    ipaddress.ip_network("172.16.0.0/12"),
    ipaddress.ip_network("192.168.0.0/16"),
    ipaddress.ip_network("100.64.0.0/10"),  # carrier-grade NAT
    ipaddress.ip_network("fc00::/7"),  # unique local
)
# What local instances may reach by default in strict mode: RFC 1918 and unique local.
DEFAULT_LOCAL_NETWORKS = ("10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "fc00::/7")
ALWAYS_DENIED_HOSTS = frozenset(
    {"metadata.google.internal", "metadata.goog", "metadata", "instance-data", "metadata.azure.com"}
)


class EgressRefused(ValueError):
    """A destination the egress policy does not allow; the message says why."""


def _normalise_host(host: str) -> str:
    return host.strip().strip("[]").rstrip(".").lower()


def _as_address(host: str) -> IPAddress | None:
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def _host_matches(host: str, patterns: Iterable[str]) -> bool:
    for pattern in patterns:
        if pattern.startswith("."):
            if host.endswith(pattern) or host == pattern[1:]:
                return True
        elif host == pattern:
            return True
    return False


@dataclass(frozen=True)
class EgressPolicy:
    """The configured allow and deny lists, split into networks and host names."""

    allow_networks: tuple[IPNetwork, ...] = ()
    allow_hosts: tuple[str, ...] = ()
    deny_networks: tuple[IPNetwork, ...] = ()
    deny_hosts: tuple[str, ...] = ()
    strict: bool = False
    local_networks: tuple[IPNetwork, ...] = ()

    @classmethod
    def parse(
        cls,
        *,
        allow: Iterable[str],
        deny: Iterable[str],
        strict: bool = False,
        local_networks: Iterable[str] = DEFAULT_LOCAL_NETWORKS,
    ) -> EgressPolicy:
        """Return the policy of MODELYARD_GATEWAY_EGRESS_* settings (strict: prod's rules)."""
        allow_nets, allow_hosts = _split_entries(allow)
        deny_nets, deny_hosts = _split_entries(deny)
        local = tuple(ipaddress.ip_network(n.strip(), strict=False) for n in local_networks if n)
        return cls(allow_nets, allow_hosts, deny_nets, deny_hosts, strict, local)

    @property
    def restricts(self) -> bool:
        """Return whether an allow list is configured (then only allowed places are reachable)."""
        return bool(self.allow_networks or self.allow_hosts)

    def check_address(self, address: IPAddress, *, kind: str = "local") -> None:
        """Raise EgressRefused unless connecting to `address` is allowed (names aside).

        `kind` is the instance's (`cloud` or `local`; a proxy counts as `local`).
        """
        if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
            address = address.ipv4_mapped
        if any(address in net for net in ALWAYS_DENIED_NETWORKS):
            raise EgressRefused(f"{address} is link-local or a cloud metadata address")
        if any(address in net for net in self.deny_networks):
            raise EgressRefused(f"{address} is in MODELYARD_GATEWAY_EGRESS_DENY")
        if not self.strict or self._allowed_address(address):
            return
        if any(address in net for net in STRICT_DENIED_NETWORKS):
            raise EgressRefused(f"{address} is loopback, multicast or reserved")
        if any(address in net for net in PRIVATE_NETWORKS):
            if kind == "cloud":
                raise EgressRefused(f"{address} is a private address (a cloud instance)")
            if not any(address in net for net in self.local_networks):
                raise EgressRefused(
                    f"{address} is a private address outside "
                    "MODELYARD_GATEWAY_EGRESS_LOCAL_NETWORKS"
                )

    def _allowed_address(self, address: IPAddress) -> bool:
        return any(address in net for net in self.allow_networks)

    async def check_host(self, host: str, port: int | None = None, *, kind: str = "local") -> None:
        """Raise EgressRefused unless `host` and every address it resolves to may be reached.

        A name that does not resolve now is let through (nothing can be reached there); every
        later connection attempt (catalog load, health check, manual check) checks again.
        """
        name = _normalise_host(host)
        if not name:
            raise EgressRefused("the destination has no host")
        if name in ALWAYS_DENIED_HOSTS:
            raise EgressRefused(f"{name} is a cloud metadata service")
        if _host_matches(name, self.deny_hosts):
            raise EgressRefused(f"{name} is in MODELYARD_GATEWAY_EGRESS_DENY")
        literal = _as_address(name)
        addresses = [literal] if literal is not None else await resolve(name, port)
        for address in addresses:
            self.check_address(address, kind=kind)
        if not self.restricts or _host_matches(name, self.allow_hosts):
            return
        if not addresses or not all(self._allowed_address(a) for a in addresses):
            raise EgressRefused(f"{name} is not in MODELYARD_GATEWAY_EGRESS_ALLOW")

    async def check_url(self, url: str, *, kind: str = "local") -> None:
        """Raise EgressRefused unless the host of `url` may be reached."""
        parts = urlsplit(url)
        try:
            port = parts.port
        except ValueError as exc:
            raise EgressRefused("the URL's port is not a number") from exc
        await self.check_host(parts.hostname or "", port, kind=kind)

    async def check_instance(
        self,
        *,
        kind: str,
        host: str | None,
        port: int | None,
        base_url: str | None,
        proxy_url: str | None,
    ) -> None:
        """Raise EgressRefused unless an instance's backend and proxy may both be reached."""
        if kind == "cloud":
            await self.check_url(base_url or "", kind="cloud")
        else:
            await self.check_host(host or "", port, kind="local")
        if proxy_url:
            await self.check_url(proxy_url, kind="local")

    async def check_destination(self, destination: Mapping[str, Any]) -> None:
        """Raise EgressRefused unless an instance's destination may be reached.

        `destination` maps the names of `DESTINATION_FIELDS` (at least kind, host, port,
        base_url and proxy_url) to their values.
        """
        await self.check_instance(
            kind=destination["kind"],
            host=destination["host"],
            port=destination["port"],
            base_url=destination["base_url"],
            proxy_url=destination["proxy_url"],
        )


def _split_entries(entries: Iterable[str]) -> tuple[tuple[IPNetwork, ...], tuple[str, ...]]:
    networks: list[IPNetwork] = []
    hosts: list[str] = []
    for raw in entries:
        entry = raw.strip()
        if not entry:
            continue
        try:
            network = ipaddress.ip_network(entry, strict=False)
        except ValueError:
            hosts.append(_normalise_host(entry))
        else:
            networks.append(network)
    return tuple(networks), tuple(hosts)


# How long an answer of the resolver is used again (a name's addresses, or that it has none).
# A catalog load resolves the host of every instance of every workspace, on every replica, and
# each new upstream connection resolves its host: left to the system resolver, a burst of loads
# asked it the same names hundreds of times in a second, and a resolver that drops part of such
# a burst (as resolvers rate-limiting a client do) stalled each load by its 5 s retry. What is
# checked is still what is connected to: an answer kept here is also the address used.
RESOLVE_TTL_S = 10.0
_answers: TTLCache[tuple[str, int], tuple[IPAddress, ...]] = TTLCache(
    maxsize=10_000, ttl=RESOLVE_TTL_S
)
_in_flight: weakref.WeakKeyDictionary[
    asyncio.AbstractEventLoop, dict[tuple[str, int], asyncio.Task[tuple[IPAddress, ...]]]
] = weakref.WeakKeyDictionary()
_lock = threading.Lock()  # replicas in threads of one process (tests) share the answers
# "No such name" is an answer; a timeout or a server failure is not (asked again next time).
_NO_SUCH_NAME = {socket.EAI_NONAME, getattr(socket, "EAI_NODATA", socket.EAI_NONAME)}


def forget_answers() -> None:
    """Forget every kept answer (the next lookup of each name asks the resolver)."""
    with _lock:
        _answers.clear()


async def resolve(host: str, port: int | None) -> list[IPAddress]:
    """Return every address `host` resolves to (empty when it does not resolve).

    Answers are kept `RESOLVE_TTL_S` seconds, and callers asking for one name at once share
    one lookup.
    """
    key = (host, port or 0)
    loop = asyncio.get_running_loop()
    with _lock:
        kept = _answers.get(key)
        if kept is not None:
            return list(kept)
        pending = _in_flight.setdefault(loop, {})
    lookup = pending.get(key)
    if lookup is None:
        lookup = pending[key] = loop.create_task(_lookup(key))
        lookup.add_done_callback(lambda _: pending.pop(key, None))
    # Shielded: a caller that goes away does not cancel the lookup the others wait for.
    return list(await asyncio.shield(lookup))


async def _lookup(key: tuple[str, int]) -> tuple[IPAddress, ...]:
    host, port = key
    try:
        infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror as exc:
        if exc.errno in _NO_SUCH_NAME:
            with _lock:
                _answers[key] = ()
        return ()
    except OSError:
        return ()
    found: list[IPAddress] = []
    for info in infos:
        address = _as_address(str(info[4][0]).split("%", 1)[0])
        if address is not None and address not in found:
            found.append(address)
    with _lock:
        _answers[key] = tuple(found)
    return tuple(found)


def connect_guard(policy: EgressPolicy) -> Callable[[str, int, str], Awaitable[str]]:
    """Return the lean client's check of each new connection: the allowed address to use.

    Names are resolved here and every address checked (the catalog load checked them once; a
    name may resolve elsewhere since); the connection goes to the first address, so what is
    checked is what is reached. A refusal is an OSError, which fails over like a refused port.
    """

    async def guard(host: str, port: int, kind: str) -> str:
        literal = _as_address(_normalise_host(host))
        addresses = [literal] if literal is not None else await resolve(host, port)
        if not addresses:
            raise OSError(f"{host} does not resolve")
        try:
            for address in addresses:
                policy.check_address(address, kind=kind)
        except EgressRefused as exc:
            raise OSError(f"refused by the egress policy: {exc}") from exc
        return host if literal is not None else str(addresses[0])

    return guard
