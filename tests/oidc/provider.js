// A real OpenID provider (node-oidc-provider) for the single sign-on tests.
//
//   node provider.js PORT CLIENT_ID CLIENT_SECRET REDIRECT_URI USERS_JSON
//
// Its issuer is http://127.0.0.1:PORT. Anyone logs in on its development login form with any
// password; the login name is the subject, and the file USERS_JSON ({"login": {claims}}, read
// again whenever claims are asked for, so that a test can change them) gives some claims. For
// "late", the ID token lives one second and the token endpoint answers 2.5 seconds after
// issuing it, so it arrives expired. Prints "listening" once it accepts connections.
import { readFileSync } from 'node:fs';

import Provider from 'oidc-provider';

const [port, clientId, clientSecret, redirectUri, usersFile] = process.argv.slice(2);
const issuer = `http://127.0.0.1:${port}`;
const LATE = 'late';

const provider = new Provider(issuer, {
  clients: [{
    client_id: clientId,
    client_secret: clientSecret,
    redirect_uris: [redirectUri],
    grant_types: ['authorization_code'],
    response_types: ['code'],
    token_endpoint_auth_method: 'client_secret_post',
    id_token_signed_response_alg: 'RS256',
  }],
  claims: {
    openid: ['sub'],
    email: ['email', 'email_verified'],
    profile: ['preferred_username', 'name', 'groups'],
  },
  async findAccount(ctx, id) {
    return {
      accountId: id,
      async claims() {
        const users = JSON.parse(readFileSync(usersFile, 'utf8'));
        const known = users[id] || { preferred_username: id, email: `${id}@example.org` };
        return { name: known.preferred_username, email_verified: true, groups: [], ...known, sub: id };
      },
    };
  },
  // A first-party client: no consent screen, every scope asked for is granted.
  async loadExistingGrant(ctx) {
    const grant = new ctx.oidc.provider.Grant({ clientId: ctx.oidc.client.clientId, accountId: ctx.oidc.session.accountId });
    grant.addOIDCScope(ctx.oidc.params.scope);
    await grant.save();
    return grant;
  },
  ttl: {
    IdToken(ctx) {
      return ctx.oidc.entities.AuthorizationCode?.accountId === LATE ? 1 : 3600;
    },
  },
  features: { devInteractions: { enabled: true } },
  cookies: { keys: ['a test provider, not a secret'] },
});

provider.use(async (ctx, next) => {
  await next();
  if (ctx.path === '/token' && ctx.oidc?.entities?.AuthorizationCode?.accountId === LATE) {
    await new Promise((resolve) => { setTimeout(resolve, 2500); });
  }
});

provider.listen(Number(port), '127.0.0.1', () => { console.log('listening'); });
