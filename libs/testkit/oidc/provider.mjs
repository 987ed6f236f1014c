// A real OpenID provider for the auth tests (panva/node-oidc-provider, a certified implementation).
// Usage: node provider.mjs CONFIG.json; prints "ready <port>" once it listens.
// CONFIG: {port, issuer, keys: [private JWKs, the first signs], default_audience,
//          clients: [{client_id, client_secret, alg, ttl, claims}],
//          browser_clients?: [{client_id, redirect_uris, origins, ttl}], accounts?: {login: claims}}
// Clients use the client_credentials grant; access tokens are JWTs for the requested resource
// (RFC 8707), carrying the client's `claims` (roles, workspaces, ...) next to iss/aud/exp/sub.
// Browser clients (public, e.g. the web console) use the authorization code grant with PKCE; the
// provider's development sign-in and consent pages stand in for the organisation's, and a
// signed-in account's access token carries that account's `claims` from `accounts`. Browser
// clients also get a refresh token (the refresh_token grant renews their access tokens, each
// living `ttl` seconds, 600 by default).
import fs from 'node:fs';
import Provider from 'oidc-provider';

const config = JSON.parse(fs.readFileSync(process.argv[2], 'utf8'));
const byId = new Map(config.clients.map((c) => [c.client_id, c]));
const browserClients = config.browser_clients ?? [];
const browserById = new Map(browserClients.map((c) => [c.client_id, c]));
const browserOrigins = new Set(browserClients.flatMap((c) => c.origins ?? []));
const accounts = config.accounts ?? {};

const provider = new Provider(config.issuer, {
  clients: config.clients.map((c) => ({
    client_id: c.client_id,
    client_secret: c.client_secret,
    grant_types: ['client_credentials'],
    redirect_uris: [],
    response_types: [],
    token_endpoint_auth_method: 'client_secret_post',
    scope: 'api',
  })).concat(browserClients.map((c) => ({
    client_id: c.client_id,
    application_type: 'web',
    token_endpoint_auth_method: 'none',
    redirect_uris: c.redirect_uris,
    post_logout_redirect_uris: c.redirect_uris,
    grant_types: ['authorization_code', 'refresh_token'],
    response_types: ['code'],
  }))),
  pkce: { required: () => true },
  issueRefreshToken: async (_ctx, client) => client.grantTypeAllowed('refresh_token'),
  scopes: ['openid', 'api', 'profile'],
  jwks: { keys: config.keys },
  clientBasedCORS: (_ctx, origin) => browserOrigins.has(origin),
  findAccount: async (_ctx, sub) =>
    sub in accounts ? { accountId: sub, claims: async () => ({ sub }) } : undefined,
  features: {
    clientCredentials: { enabled: true },
    devInteractions: { enabled: browserClients.length > 0 },
    resourceIndicators: {
      enabled: true,
      defaultResource: () => config.default_audience,
      useGrantedResource: () => true,
      getResourceServerInfo: (_ctx, resource, client) => {
        const c = byId.get(client.clientId) ?? browserById.get(client.clientId) ?? {};
        return {
          scope: byId.has(client.clientId) ? 'api' : 'openid profile',
          audience: resource,
          accessTokenTTL: c.ttl ?? 600,
          accessTokenFormat: 'jwt',
          jwt: { sign: { alg: c.alg ?? 'RS256' } },
        };
      },
    },
  },
  extraTokenClaims: (_ctx, token) =>
    token.accountId ? accounts[token.accountId] : byId.get(token.clientId)?.claims,
});
provider.proxy = false;

const server = provider.listen(config.port, '127.0.0.1', () => {
  console.log(`ready ${server.address().port}`);
});
process.on('SIGTERM', () => server.close(() => process.exit(0)));
