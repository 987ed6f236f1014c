"""How a device proves who it is, derived from its id and token on both ends.

The deployer sees a device token in clear only when it issues it (registration, rotation); it
stores the SHA-256. From those the device and the deployer derive, without ever sending them:

* the device's broker login: user `device-<id>`, password an HMAC of the token, so the broker
  never learns the token that opens the deployer's HTTP API;
* the ingress credential the gateway presents to the device: an HMAC keyed by the token's hash,
  so the deployer can compute it from what it stores, and it changes when the token rotates.
"""

from __future__ import annotations

import hashlib
import hmac
import uuid
from urllib.parse import quote, urlsplit, urlunsplit

BROKER_USER_PREFIX = "device-"
INGRESS_TOKEN_PREFIX = "myin_"


def token_hash(token: str) -> str:
    """Return the stored form of a device token (SHA-256 hex; tokens carry 256 random bits)."""
    return hashlib.sha256(token.encode()).hexdigest()


def broker_username(device_id: uuid.UUID | str) -> str:
    """Return the broker login of a device."""
    return f"{BROKER_USER_PREFIX}{device_id}"


def device_of_sender(sender: str | None) -> uuid.UUID | None:
    """Return the device a broker login belongs to, or None for any other login."""
    if not sender or not sender.startswith(BROKER_USER_PREFIX):
        return None
    try:
        return uuid.UUID(sender.removeprefix(BROKER_USER_PREFIX))
    except ValueError:
        return None


def broker_password(token: str) -> str:
    """Return a device's broker password, derived from its token."""
    return hmac.new(token.encode(), b"modelyard-broker-login", hashlib.sha256).hexdigest()


def ingress_token(stored_token_hash: str, device_id: uuid.UUID | str) -> str:
    """Return the credential a device's ingress accepts (from the hash the deployer keeps)."""
    digest = hmac.new(
        stored_token_hash.encode(), f"modelyard-ingress:{device_id}".encode(), hashlib.sha256
    ).hexdigest()
    return INGRESS_TOKEN_PREFIX + digest


def device_amqp_url(broker_url: str, device_id: uuid.UUID | str, token: str) -> str:
    """Return `broker_url` with the device's own login in place of any login it carries."""
    parts = urlsplit(broker_url)
    host = parts.hostname or "127.0.0.1"
    if ":" in host:
        host = f"[{host}]"
    login = f"{quote(broker_username(device_id), safe='')}:{quote(broker_password(token), safe='')}"
    netloc = f"{login}@{host}"
    if parts.port:
        netloc += f":{parts.port}"
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))
