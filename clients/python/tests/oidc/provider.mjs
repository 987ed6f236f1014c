// A real OpenID provider for `modelyard login` tests (panva/node-oidc-provider).
// Usage: node provider.mjs PORT AUDIENCE; prints "ready <port>" once it listens.
// One public native client, `modelyard-cli`: authorization code with PKCE on a loopback
// redirect (any port, RFC 8252) and the device authorization grant, refresh tokens; the
// provider's development sign-in and consent pages stand in for the organisation's screens.
// Access tokens are JWTs for AUDIENCE (RFC 8707 resource indicators).
import Provider from 'oidc-provider';

const port = Number(process.argv[2]);
const audience = process.argv[3];
const issuer = `http://127.0.0.1:${port}`;

const provider = new Provider(issuer, {
  clients: [
    {
      client_id: 'modelyard-cli',
      application_type: 'native',
      token_endpoint_auth_method: 'none',
      redirect_uris: ['http://127.0.0.1/callback'],
      grant_types: [
        'authorization_code',
        'refresh_token',
        'urn:ietf:params:oauth:grant-type:device_code',
      ],
      response_types: ['code'],
    },
  ],
  pkce: { required: () => true },
  scopes: ['openid', 'profile', 'offline_access'],
  features: {
    devInteractions: { enabled: true },
    deviceFlow: { enabled: true },
    resourceIndicators: {
      enabled: true,
      defaultResource: () => audience,
      useGrantedResource: () => true,
      getResourceServerInfo: () => ({
        scope: 'openid profile offline_access',
        audience,
        accessTokenTTL: 60,
        accessTokenFormat: 'jwt',
      }),
    },
  },
  issueRefreshToken: async () => true,
  findAccount: async (_ctx, sub) => ({ accountId: sub, claims: async () => ({ sub }) }),
});

const server = provider.listen(port, '127.0.0.1', () => {
  console.log(`ready ${server.address().port}`);
});
process.on('SIGTERM', () => server.close(() => process.exit(0)));
