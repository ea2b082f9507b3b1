// A real OpenID provider (npm `oidc-provider`) for the federation tests.
//
//   node provider.mjs CONFIG.json
//
// CONFIG: {issuer, port, audience, alg, keys: [private JWKs], clients: [{client_id,
// client_secret, claims: {...}}]}. Clients get JWT access tokens for `audience` through
// the client-credentials grant, carrying their `claims` (organization, roles, tier...).
// Discovery at /.well-known/openid-configuration, keys at the jwks_uri it names.
// Prints "ready" once listening; stops on SIGTERM.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';

const config = JSON.parse(readFileSync(process.argv[2], 'utf8'));
const modules = process.env.TACGW_TEST_OIDC_NODE_MODULES;
const { default: Provider } = await import(
  pathToFileURL(join(modules, 'oidc-provider', 'lib', 'index.js')).href
);

const RESOURCE = 'https://gateway.test/';
const byId = new Map(config.clients.map((c) => [c.client_id, c]));

const provider = new Provider(config.issuer, {
  clients: config.clients.map((c) => ({
    client_id: c.client_id,
    client_secret: c.client_secret,
    grant_types: ['client_credentials'],
    redirect_uris: [],
    response_types: [],
    token_endpoint_auth_method: 'client_secret_basic',
  })),
  jwks: { keys: config.keys },
  scopes: ['models'],
  features: {
    devInteractions: { enabled: false },
    clientCredentials: { enabled: true },
    resourceIndicators: {
      enabled: true,
      defaultResource: async () => RESOURCE,
      useGrantedResource: async () => true,
      getResourceServerInfo: async () => ({
        scope: 'models',
        audience: config.audience,
        accessTokenFormat: 'jwt',
        accessTokenTTL: config.ttl ?? 300,
        jwt: { sign: { alg: config.alg } },
      }),
    },
  },
  extraTokenClaims: async (_ctx, token) => byId.get(token.clientId)?.claims,
});
provider.proxy = false;

const server = provider.listen(config.port, '127.0.0.1', () => {
  process.stdout.write('ready\n');
});
process.on('SIGTERM', () => server.close(() => process.exit(0)));
