"""OpenID Connect sign-in for `modelyard login`: authorization code + PKCE on a loopback
redirect (RFC 8252), or the device authorization grant (RFC 8628), from the issuer's discovery
document; and the refresh of an expired access token.
"""

from __future__ import annotations

import base64
import hashlib
import secrets
import threading
import time
import urllib.parse
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, HTTPServer
from typing import Any

import httpx

from modelyard_cli.config import UsageProblem


class LoginFailed(Exception):
    """The issuer refused the sign-in (an exit 1 error)."""


@dataclass(frozen=True)
class Tokens:
    """What a sign-in yields."""

    access_token: str
    refresh_token: str | None
    expires_at: float | None
    id_token: str | None


def audience(resource: str | None) -> dict[str, str]:
    """Return the RFC 8707 `resource` parameter asking for tokens for the Modelyard APIs."""
    return {"resource": resource} if resource else {}


def discover(http: httpx.Client, issuer: str) -> dict[str, Any]:
    """Return the issuer's OpenID configuration."""
    url = issuer.rstrip("/") + "/.well-known/openid-configuration"
    try:
        response = http.get(url)
    except httpx.TransportError as exc:
        raise LoginFailed(f"cannot reach the issuer at {url}: {exc}") from exc
    if response.status_code != 200:
        raise LoginFailed(f"{url} answered {response.status_code}")
    document: dict[str, Any] = response.json()
    return document


def pkce_pair() -> tuple[str, str]:
    """Return a PKCE code verifier and its S256 challenge."""
    verifier = secrets.token_urlsafe(64)[:96]
    digest = hashlib.sha256(verifier.encode("ascii")).digest()
    return verifier, base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


def token_request(http: httpx.Client, endpoint: str, form: dict[str, str]) -> dict[str, Any]:
    """Return the token endpoint's JSON answer; raise LoginFailed on an OAuth error."""
    response = http.post(endpoint, data=form, headers={"Accept": "application/json"})
    body: dict[str, Any] = response.json() if response.content else {}
    if response.status_code != 200:
        error = body.get("error_description") or body.get("error") or response.text[:200]
        raise LoginFailed(f"the issuer refused the token request: {error}")
    return body


def tokens_of(body: dict[str, Any]) -> Tokens:
    """Return the tokens of a token endpoint answer."""
    expires_in = body.get("expires_in")
    return Tokens(
        access_token=str(body["access_token"]),
        refresh_token=body.get("refresh_token"),
        expires_at=time.time() + float(expires_in) if expires_in else None,
        id_token=body.get("id_token"),
    )


class _Redirect(BaseHTTPRequestHandler):
    """Receives the one redirect of the browser back to the loopback address."""

    result: dict[str, str]
    done: threading.Event

    def do_GET(self) -> None:  # noqa: N802 (the stdlib's name)
        query = dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(self.path).query))
        if "code" not in query and "error" not in query:
            self.send_response(404)
            self.end_headers()
            return
        type(self).result.update(query)
        self.send_response(200)
        self.send_header("Content-Type", "text/plain; charset=utf-8")
        self.end_headers()
        if "error" in query:
            self.wfile.write(b"Sign-in to Modelyard refused. You can close this window.\n")
        else:
            self.wfile.write(b"Signed in to Modelyard. You can close this window.\n")
        type(self).done.set()

    def log_message(self, format: str, *args: Any) -> None:
        """Keep the terminal quiet."""


def login_with_browser(
    http: httpx.Client,
    *,
    issuer: str,
    client_id: str,
    scope: str,
    open_url: Callable[[str], None],
    resource: str | None = None,
    timeout_s: float = 300,
) -> Tokens:
    """Return tokens from the authorization code flow with PKCE and a loopback redirect."""
    config = discover(http, issuer)
    verifier, challenge = pkce_pair()
    state = secrets.token_urlsafe(24)

    class Redirect(_Redirect):
        result: dict[str, str] = {}  # noqa: RUF012 (one class per login)
        done = threading.Event()

    handler = Redirect
    server = HTTPServer(("127.0.0.1", 0), handler)
    redirect_uri = f"http://127.0.0.1:{server.server_address[1]}/callback"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        params = {
            "response_type": "code",
            "client_id": client_id,
            "redirect_uri": redirect_uri,
            "scope": scope,
            "state": state,
            "code_challenge": challenge,
            "code_challenge_method": "S256",
        }
        if "offline_access" in scope.split():
            params["prompt"] = "consent"  # OIDC Core 11: a refresh token needs fresh consent
        query = urllib.parse.urlencode({**params, **audience(resource)})
        open_url(f"{config['authorization_endpoint']}?{query}")
        if not handler.done.wait(timeout_s):
            raise LoginFailed(f"no answer from the browser within {timeout_s:.0f}s")
    finally:
        server.shutdown()
        server.server_close()
    result = handler.result
    if "error" in result:
        raise LoginFailed(f"sign-in refused: {result.get('error_description') or result['error']}")
    if result.get("state") != state:
        raise LoginFailed("sign-in answer with a wrong state (not this login's): refused")
    body = token_request(
        http,
        config["token_endpoint"],
        {
            "grant_type": "authorization_code",
            "code": result["code"],
            "redirect_uri": redirect_uri,
            "client_id": client_id,
            "code_verifier": verifier,
            **audience(resource),
        },
    )
    return tokens_of(body)


def login_with_device_code(
    http: httpx.Client,
    *,
    issuer: str,
    client_id: str,
    scope: str,
    show: Callable[[str, str], None],
    resource: str | None = None,
    timeout_s: float = 600,
) -> Tokens:
    """Return tokens from the device authorization grant (for machines without a browser)."""
    config = discover(http, issuer)
    endpoint = config.get("device_authorization_endpoint")
    if not endpoint:
        raise UsageProblem(f"{issuer} offers no device authorization; log in without --device")
    form = {"client_id": client_id, "scope": scope, **audience(resource)}
    response = http.post(endpoint, data=form)
    if response.status_code != 200:
        raise LoginFailed(f"device authorization refused: {response.text[:200]}")
    grant = response.json()
    show(grant.get("verification_uri_complete") or grant["verification_uri"], grant["user_code"])
    interval = float(grant.get("interval", 5))
    deadline = time.monotonic() + min(timeout_s, float(grant.get("expires_in", timeout_s)))
    while time.monotonic() < deadline:
        time.sleep(interval)
        answer = http.post(
            config["token_endpoint"],
            data={
                "grant_type": "urn:ietf:params:oauth:grant-type:device_code",
                "device_code": grant["device_code"],
                "client_id": client_id,
                **audience(resource),
            },
        )
        body = answer.json()
        if answer.status_code == 200:
            return tokens_of(body)
        error = body.get("error")
        if error == "slow_down":
            interval += 5
        elif error != "authorization_pending":
            raise LoginFailed(f"sign-in refused: {body.get('error_description') or error}")
    raise LoginFailed("the device code expired before the sign-in was approved")


def refresh(
    http: httpx.Client,
    *,
    issuer: str,
    client_id: str,
    refresh_token: str,
    resource: str | None = None,
) -> Tokens:
    """Return new tokens for a refresh token."""
    config = discover(http, issuer)
    form = {"grant_type": "refresh_token", "refresh_token": refresh_token, "client_id": client_id}
    body = token_request(http, config["token_endpoint"], {**form, **audience(resource)})
    tokens = tokens_of(body)
    if tokens.refresh_token is None:  # the issuer kept the old one valid
        tokens = Tokens(tokens.access_token, refresh_token, tokens.expires_at, tokens.id_token)
    return tokens
