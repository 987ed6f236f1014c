"""The ingress policy: which addresses a device may advertise for its ingress.

Endpoint URLs are built from a device's advertised host and ingress port, and the gateway then
sends clients' prompts and the device's ingress credential there. So an address is a trust
decision: it is set only at the device's registration (by an editor, or by the device itself
with a provisioning token) or by a workspace admin, and whoever sets it, it is checked here:

- never the unspecified address (0.0.0.0, ::), link-local (169.254/16, fe80::/10, where cloud
  metadata services live), multicast, or reserved ranges;
- never loopback, except in dev (every process on one machine), or where
  `DEVICE_INGRESS_ALLOW_LOOPBACK` says so; `localhost` and `*.localhost` count as loopback;
- never one of the platform's own ports (`DEVICE_INGRESS_REFUSED_PORTS`, by default the ports
  of the gateway, registry, deployer, agent API, PostgreSQL and RabbitMQ), on any address, dev
  included: a device's ingress never needs them, and a host name may lead anywhere;
- with `DEVICE_INGRESS_ALLOW` set, only inside those networks or under those host names.

A host name is resolved (bounded by `DEVICE_INGRESS_RESOLVE_TIMEOUT_S`) and every address it
resolves to is judged like a literal one; a name that does not resolve here is accepted unless an
allow list is set (the gateway resolves it again when it calls, under its own egress policy).
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from collections.abc import Sequence
from dataclasses import dataclass

from modelyard_common.errors import FieldError, UnprocessableError
from modelyard_deployer.settings import DeployerSettings

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
# "This network" (RFC 1122): 0.0.0.0/8 reaches the local host on Linux.
THIS_NETWORK = ipaddress.ip_network("0.0.0.0/8")


@dataclass(frozen=True, slots=True)
class IngressPolicy:
    """Where devices may be reached, as the deployer's settings say."""

    networks: tuple[IPNetwork, ...]
    hosts: tuple[str, ...]
    allow_loopback: bool
    refused_ports: frozenset[int]
    resolve_timeout_s: float

    @classmethod
    def from_settings(cls, settings: DeployerSettings) -> IngressPolicy:
        """Return the policy the settings describe."""
        networks: list[IPNetwork] = []
        hosts: list[str] = []
        for entry in settings.device_ingress_allow:
            try:
                networks.append(ipaddress.ip_network(entry, strict=False))
            except ValueError:
                hosts.append(entry.lower().rstrip("."))
        return cls(
            networks=tuple(networks),
            hosts=tuple(hosts),
            allow_loopback=settings.loopback_ingress_allowed,
            refused_ports=settings.platform_ports,
            resolve_timeout_s=settings.device_ingress_resolve_timeout_s,
        )

    @property
    def restricted(self) -> bool:
        """Return whether an allow list limits the addresses (else: anything not refused)."""
        return bool(self.networks or self.hosts)

    def address_refusal(self, address: IPAddress) -> str | None:
        """Return why an IP address may not be a device's ingress (None: it may)."""
        if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
            address = address.ipv4_mapped
        if address.is_unspecified or address in THIS_NETWORK:
            return f"{address} is the unspecified address"
        if address.is_loopback:
            return None if self.allow_loopback else f"{address} is a loopback address"
        if address.is_link_local:
            return f"{address} is a link-local address"
        if address.is_multicast:
            return f"{address} is a multicast address"
        if address.is_reserved:
            return f"{address} is a reserved address"
        return None

    def host_listed(self, host: str) -> bool:
        """Return whether a host name is on the allow list (exactly, or under `*.domain`)."""
        name = host.lower().rstrip(".")
        for allowed in self.hosts:
            if allowed.startswith("*."):
                if name.endswith(allowed[1:]):
                    return True
            elif name == allowed:
                return True
        return False

    def in_networks(self, address: IPAddress) -> bool:
        """Return whether an address lies inside an allowed network."""
        if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
            address = address.ipv4_mapped
        return any(address.version == n.version and address in n for n in self.networks)


def _refused(field: str, message: str) -> UnprocessableError:
    return UnprocessableError(
        f"The device's ingress address is refused by the ingress policy: {message}.",
        errors=[
            FieldError(loc=["body", field], field=field, message=message, type="ingress_policy")
        ],
    )


def _literal(host: str) -> IPAddress | None:
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        return None


async def _resolve(host: str, timeout_s: float) -> Sequence[IPAddress] | None:
    """Return the addresses a host name resolves to here (None: it does not resolve)."""
    loop = asyncio.get_running_loop()
    try:
        infos = await asyncio.wait_for(
            loop.getaddrinfo(host, None, type=socket.SOCK_STREAM), timeout_s
        )
    except (OSError, TimeoutError, UnicodeError):
        return None
    found: list[IPAddress] = []
    for info in infos:
        literal = _literal(str(info[4][0]).split("%", 1)[0])
        if literal is not None:
            found.append(literal)
    return found or None


async def check_ingress(policy: IngressPolicy, *, host: str | None, port: int | None) -> None:
    """Raise 422 (naming `advertise_host` or `ingress_port`) when the policy refuses them."""
    if port is not None and port in policy.refused_ports:
        raise _refused("ingress_port", f"port {port} is one of the platform's own ports")
    if host is None:
        return
    literal = _literal(host)
    if literal is not None:
        reason = policy.address_refusal(literal)
        if reason is None and policy.restricted and not policy.in_networks(literal):
            reason = f"{host} is outside the networks devices may advertise"
        if reason is not None:
            raise _refused("advertise_host", reason)
        return
    name = host.lower().rstrip(".")
    if name == "localhost" or name.endswith(".localhost"):
        if not policy.allow_loopback:
            raise _refused("advertise_host", f"{host} names the loopback interface")
        return
    addresses = await _resolve(name, policy.resolve_timeout_s)
    for address in addresses or ():
        reason = policy.address_refusal(address)
        if reason is not None:
            raise _refused("advertise_host", f"{host} resolves to {address}, and {reason}")
    if not policy.restricted or policy.host_listed(name):
        return
    if addresses and all(policy.in_networks(a) for a in addresses):
        return
    raise _refused("advertise_host", f"{host} is not among the hosts devices may advertise")
