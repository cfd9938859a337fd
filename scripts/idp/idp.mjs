// idp.mjs runs a real OpenID provider (panva's oidc-provider) for promgate's
// end-to-end tests. Test use only: in-memory storage, development login form
// (any password), fixed test secrets.
//
// Environment:
//   PORT            listen port on 127.0.0.1 (default 3000); issuer http://127.0.0.1:PORT
//   AUDIENCE        aud of the JWT access tokens (default https://promgate.test)
//   REDIRECT_URI    the gateway's /oauth2/callback (default https://127.0.0.1:8443/oauth2/callback)
//   CLIENT_SECRET   secret of the confidential code-flow client "promgate" (default promgate-secret)
//   KEY_FILE        optional: a JSON file holding the private signing JWK. When it
//                   is unset, every start makes a new RSA key with a new kid, which
//                   is how the tests rotate the signing key: restart the process.
//
// Clients:
//   promgate   confidential, authorization code + PKCE (S256) + refresh tokens
//              (issued at every code exchange, as Keycloak does, without the
//              offline_access scope, which oidc-provider grants only with
//              prompt=consent)
//   scraper-a  client_credentials, secret scraper-a-secret, groups [team-a]
//   scraper-b  client_credentials, secret scraper-b-secret, groups [team-b]
// Users (log in with any password): alice [team-a], bob [team-b], root [admins].
//
// Sign-out: discovery lists a revocation_endpoint (RFC 7009, /token/revocation)
// and an end_session_endpoint (RP-initiated logout, /session/end). Revoking a
// refresh token revokes its whole grant.
//
// On start it prints one JSON line {"ready":true,"issuer":...,"kid":...} to stdout,
// and then one JSON line per revoked grant, {"event":"grant.revoked","route":...}
// (route "revocation" for RFC 7009), and per completed logout,
// {"event":"end_session.success"}, so that tests can see what the gateway did.
import { generateKeyPairSync, randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import Provider from 'oidc-provider';

const port = Number(process.env.PORT || 3000);
const issuer = `http://127.0.0.1:${port}`;
const audience = process.env.AUDIENCE || 'https://promgate.test';
const redirectURI = process.env.REDIRECT_URI || 'https://127.0.0.1:8443/oauth2/callback';
const clientSecret = process.env.CLIENT_SECRET || 'promgate-secret';

function signingKey() {
  if (process.env.KEY_FILE) {
    return JSON.parse(readFileSync(process.env.KEY_FILE, 'utf8'));
  }
  const { privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
  const jwk = privateKey.export({ format: 'jwk' });
  return { ...jwk, kid: `rs256-${randomBytes(6).toString('hex')}`, alg: 'RS256', use: 'sig' };
}
const key = signingKey();

const users = {
  alice: { email: 'alice@example.test', name: 'Alice', groups: ['team-a'] },
  bob: { email: 'bob@example.test', name: 'Bob', groups: ['team-b'] },
  root: { email: 'root@example.test', name: 'Root', groups: ['admins'] },
};
const clientGroups = { 'scraper-a': ['team-a'], 'scraper-b': ['team-b'] };

const provider = new Provider(issuer, {
  clients: [
    {
      client_id: 'promgate',
      client_secret: clientSecret,
      redirect_uris: [redirectURI],
      grant_types: ['authorization_code', 'refresh_token'],
      response_types: ['code'],
      token_endpoint_auth_method: 'client_secret_basic',
    },
    ...Object.keys(clientGroups).map((id) => ({
      client_id: id,
      client_secret: `${id}-secret`,
      grant_types: ['client_credentials'],
      response_types: [],
      redirect_uris: [],
      token_endpoint_auth_method: 'client_secret_basic',
    })),
  ],
  jwks: { keys: [key] },
  cookies: { keys: [randomBytes(32).toString('hex')] },
  scopes: ['openid', 'email', 'profile', 'groups', 'offline_access', 'metrics:read'],
  claims: {
    openid: ['sub'],
    email: ['email', 'email_verified'],
    profile: ['name', 'preferred_username'],
    groups: ['groups'],
  },
  conformIdTokenClaims: false, // groups and email in the ID token
  async issueRefreshToken(_ctx, client) {
    return client.grantTypeAllowed('refresh_token');
  },
  pkce: { required: () => true },
  features: {
    devInteractions: { enabled: true },
    clientCredentials: { enabled: true },
    revocation: { enabled: true },
    rpInitiatedLogout: { enabled: true },
    resourceIndicators: {
      enabled: true,
      defaultResource: () => audience,
      useGrantedResource: () => true,
      getResourceServerInfo: () => ({
        scope: 'metrics:read',
        audience,
        accessTokenFormat: 'jwt',
        jwt: { sign: { alg: 'RS256' } },
      }),
    },
  },
  async findAccount(_ctx, sub) {
    const u = users[sub];
    if (!u) return undefined;
    return {
      accountId: sub,
      async claims() {
        return { sub, email: u.email, email_verified: true, name: u.name, preferred_username: sub, groups: u.groups };
      },
    };
  },
  async extraTokenClaims(_ctx, token) {
    if (token.kind === 'ClientCredentials') {
      return { groups: clientGroups[token.clientId] || [] };
    }
    if (token.accountId && users[token.accountId]) {
      return { groups: users[token.accountId].groups };
    }
    return undefined;
  },
  // Consent is implied: the tests log in without a consent screen.
  async loadExistingGrant(ctx) {
    const grant = new ctx.oidc.provider.Grant({ clientId: ctx.oidc.client.clientId, accountId: ctx.oidc.session.accountId });
    grant.addOIDCScope('openid email profile groups offline_access');
    grant.addResourceScope(audience, 'metrics:read');
    await grant.save();
    return grant;
  },
  ttl: { AccessToken: 600, ClientCredentials: 600, IdToken: 600, Session: 3600 },
});

provider.on('server_error', (_ctx, err) => console.error('idp server_error', err));
provider.on('revocation.error', (_ctx, err) => console.error('idp revocation.error', err.message));
provider.on('end_session.error', (_ctx, err) => console.error('idp end_session.error', err.message));
provider.on('grant.revoked', (ctx) => console.log(JSON.stringify({ event: 'grant.revoked', route: ctx.oidc?.route })));
provider.on('end_session.success', () => console.log(JSON.stringify({ event: 'end_session.success' })));

provider.listen(port, '127.0.0.1', () => {
  console.log(JSON.stringify({ ready: true, issuer, kid: key.kid }));
});

for (const sig of ['SIGTERM', 'SIGINT']) {
  process.on(sig, () => process.exit(0));
}
