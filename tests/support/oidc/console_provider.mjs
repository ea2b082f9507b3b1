// A real OpenID provider (npm `oidc-provider`) for the console's sign-in test: the
// authorization code flow with PKCE, its development login and consent pages, and
// accounts whose `groups` claim the console maps onto roles.
//
//   node console_provider.mjs CONFIG.json
//
// CONFIG: {issuer, port, keys: [private JWKs], client_id, client_secret, redirect_uri,
// accounts: {login: {groups: [...]}}}. Prints "ready" once listening; stops on SIGTERM.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';

const config = JSON.parse(readFileSync(process.argv[2], 'utf8'));
const modules = process.env.TACGW_TEST_OIDC_NODE_MODULES;
const { default: Provider } = await import(
  pathToFileURL(join(modules, 'oidc-provider', 'lib', 'index.js')).href
);

const provider = new Provider(config.issuer, {
  clients: [
    {
      client_id: config.client_id,
      client_secret: config.client_secret,
      redirect_uris: [config.redirect_uri],
      grant_types: ['authorization_code'],
      response_types: ['code'],
      token_endpoint_auth_method: 'client_secret_basic',
    },
  ],
  jwks: { keys: config.keys },
  scopes: ['openid', 'email', 'groups'],
  claims: { openid: ['sub'], email: ['email'], groups: ['groups'] },
  // The console reads the groups from the ID token itself, as most IdPs can be told to.
  conformIdTokenClaims: false,
  pkce: { required: () => true },
  features: { devInteractions: { enabled: true } },
  findAccount: async (_ctx, id) => ({
    accountId: id,
    claims: async () => ({
      sub: id,
      email: `${id}@idp.test`,
      groups: config.accounts[id]?.groups ?? [],
    }),
  }),
});
provider.proxy = false;

const server = provider.listen(config.port, '127.0.0.1', () => {
  process.stdout.write('ready\n');
});
process.on('SIGTERM', () => server.close(() => process.exit(0)));
