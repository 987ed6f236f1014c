"""What verifying a person's bearer token costs per request, with and without the token cache.

`TokenVerifier.principal` is what every authenticated API call runs. Measured in one process,
one token reused (as a client reuses its access token until it expires), for a development
HS256 token and for an OpenID RS256 token checked against a JWKS served on loopback (the same
`OidcVerifier`, `PyJWKClient` and worker-thread lookup as in production). Cache off is
`MODELYARD_TOKEN_CACHE_S=0`; on is the default (60 s).

Environment: BENCH_CALLS (default 20000 for HS256; a quarter of it for RS256).
"""

from __future__ import annotations

import asyncio
import json
import os
import threading
import time
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import jwt
from cryptography.hazmat.primitives.asymmetric import rsa

from modelyard_common.auth import TokenVerifier, issue_token
from modelyard_common.settings import DEV_JWT_SECRET, ServiceSettings

CALLS = int(os.environ.get("BENCH_CALLS", "20000"))
ISSUER = "https://issuer.bench.test"
AUDIENCE = "https://api.bench.test"


def jwks_server(jwks: dict[str, Any]) -> tuple[ThreadingHTTPServer, str]:
    """Serve `jwks` on a loopback port; return the server and the JWKS URL."""
    body = json.dumps(jwks).encode()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, f"http://127.0.0.1:{server.server_address[1]}/jwks"


async def per_call(verifier: TokenVerifier, token: str, calls: int) -> float:
    """Return the mean microseconds of `principal` over `calls` calls (after one warm call)."""
    await verifier.principal(token, requested_workspace=None)
    started = time.perf_counter()
    for _ in range(calls):
        await verifier.principal(token, requested_workspace=None)
    return (time.perf_counter() - started) / calls * 1e6


async def main() -> None:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    public = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(key.public_key()))
    server, jwks_url = jwks_server({"keys": [{**public, "kid": "k1", "use": "sig"}]})
    now = datetime.now(UTC)
    oidc_token = jwt.encode(
        {
            "iss": ISSUER,
            "aud": AUDIENCE,
            "sub": "bench",
            "iat": now,
            "exp": now + timedelta(hours=1),
            "workspaces": ["bench"],
            "roles": ["editor"],
        },
        key,
        algorithm="RS256",
        headers={"kid": "k1"},
    )
    dev_token = issue_token(secret=DEV_JWT_SECRET, sub="bench", roles=["editor"], workspace="b")
    oidc = {"oidc_issuer": ISSUER, "oidc_audience": AUDIENCE, "oidc_jwks_url": jwks_url}
    rows = []
    try:
        for name, token, settings, calls in (
            ("dev HS256", dev_token, {"env": "dev"}, CALLS),
            ("OpenID RS256 (JWKS on loopback)", oidc_token, {"env": "prod", **oidc}, CALLS // 4),
        ):
            off = await per_call(
                TokenVerifier(ServiceSettings(**settings, token_cache_s=0)), token, calls
            )
            on = await per_call(TokenVerifier(ServiceSettings(**settings)), token, calls)
            rows.append((name, off, on))
    finally:
        server.shutdown()
    print("\nBearer token verification per request (TokenVerifier.principal, one token reused)")
    print("| token | cache off (µs) | cache on (µs) | saved per request (µs) |")
    print("|---|---|---|---|")
    for name, off, on in rows:
        print(f"| {name} | {off:.1f} | {on:.1f} | {off - on:.1f} |")


if __name__ == "__main__":
    asyncio.run(main())
