// A real OpenID provider for the auth tests (panva/node-oidc-provider, a certified implementation).
// Usage: node provider.mjs CONFIG.json; prints "ready <port>" once it listens.
// CONFIG: {port, issuer, keys: [private JWKs, the first signs], default_audience,
//          clients: [{client_id, client_secret, alg, ttl, claims}]}
// Clients use the client_credentials grant; access tokens are JWTs for the requested resource
// (RFC 8707), carrying the client's `claims` (roles, workspaces, ...) next to iss/aud/exp/sub.
import fs from 'node:fs';
import Provider from 'oidc-provider';

const config = JSON.parse(fs.readFileSync(process.argv[2], 'utf8'));
const byId = new Map(config.clients.map((c) => [c.client_id, c]));

const provider = new Provider(config.issuer, {
  clients: config.clients.map((c) => ({
    client_id: c.client_id,
    client_secret: c.client_secret,
    grant_types: ['client_credentials'],
    redirect_uris: [],
    response_types: [],
    token_endpoint_auth_method: 'client_secret_post',
    scope: 'api',
  })),
  scopes: ['openid', 'api'],
  jwks: { keys: config.keys },
  features: {
    clientCredentials: { enabled: true },
    devInteractions: { enabled: false },
    resourceIndicators: {
      enabled: true,
      defaultResource: () => config.default_audience,
      getResourceServerInfo: (_ctx, resource, client) => {
        const c = byId.get(client.clientId);
        return {
          scope: 'api',
          audience: resource,
          accessTokenTTL: c.ttl ?? 600,
          accessTokenFormat: 'jwt',
          jwt: { sign: { alg: c.alg ?? 'RS256' } },
        };
      },
    },
  },
  extraTokenClaims: (_ctx, token) => byId.get(token.clientId)?.claims,
});
provider.proxy = false;

const server = provider.listen(config.port, '127.0.0.1', () => {
  console.log(`ready ${server.address().port}`);
});
process.on('SIGTERM', () => server.close(() => process.exit(0)));
