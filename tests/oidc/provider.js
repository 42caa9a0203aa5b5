// A real OpenID Connect provider (node-oidc-provider) on loopback for kaas's SSO tests
// (tests/it/sso.rs). Usage: REDIRECT_URIS=<uri>[,<uri>...] node provider.js
// Prints "listening on <port>" once it serves the issuer http://127.0.0.1:<port>, or
// https://127.0.0.1:<port> with TLS_CERT and TLS_KEY (PEM files) set.
//
// Every client must use PKCE (S256): a sign-in through any of them shows that kaas sends a
// code challenge and the verifier that matches it. The clients:
// - "kaas": ID tokens signed RS256 with the provider's published key;
// - "kaas-hs": ID tokens signed HS256 with the client secret: a key kaas does not accept,
//   the "unexpected key" case;
// - "kaas-tamper": like "kaas", but the token response is altered on its way out: the ID
//   token's e-mail claim is changed after signing, as a man in the middle would;
// - "kaas-expired": ID tokens valid for 1 second, answered 2.5 seconds late: expired on
//   arrival;
// - "kaas-pkce": its token requests reach the provider with a code_verifier altered on the
//   way in (as if kaas sent the wrong one): the provider must refuse the code;
// - the clients of `rewrites` below: ID tokens with one claim wrong, signed again with the
//   provider's own key, so that only that claim gives them away.
// Sign-in is a one-field form the test posts to non-interactively:
// POST /interaction/<uid>/login with account=<id>; consent is granted with it.
import crypto from 'node:crypto';
import fs from 'node:fs';
import http from 'node:http';
import https from 'node:https';
import Provider from 'oidc-provider';

const redirectUris = (process.env.REDIRECT_URIS || '').split(',').filter(Boolean);

const accounts = {
  alice: { email: 'alice@example.com', email_verified: true, name: 'Alice', groups: ['k8s-admins'] },
  bob: { email: 'bob@example.com', email_verified: true, name: 'Bob', groups: [] },
  eve: { email: 'eve@example.com', email_verified: false, name: 'Eve', groups: [] },
  mallory: { email: 'mallory@elsewhere.test', email_verified: true, name: 'Mallory', groups: [] },
};

// A confidential client with the secret "<id>-secret".
function client(id) {
  return {
    client_id: id,
    client_secret: `${id}-secret`,
    redirect_uris: redirectUris,
    grant_types: ['authorization_code'],
    response_types: ['code'],
  };
}

function readBody(req) {
  return new Promise((resolve, reject) => {
    let data = '';
    req.on('data', (c) => { data += c; });
    req.on('end', () => resolve(new URLSearchParams(data)));
    req.on('error', reject);
  });
}

function basicClient(req) {
  const auth = req.headers.authorization || '';
  if (!auth.startsWith('Basic ')) return '';
  return decodeURIComponent(Buffer.from(auth.slice(6), 'base64').toString().split(':')[0]);
}

// The provider's signing key, made at start and given to the provider (published in its
// JWKS), so that `rewrites` can sign altered ID tokens with it.
const signingKey = crypto.generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey;
const signingJwk = { ...signingKey.export({ format: 'jwk' }), kid: 'test-key', use: 'sig', alg: 'RS256' };

// ID tokens with one claim wrong, by client; each is signed again with the provider's key.
const rewrites = {
  // Issued for another client.
  'kaas-aud': (c) => { c.aud = 'someone-else'; },
  // From another issuer.
  'kaas-iss': (c) => { c.iss = 'https://idp.elsewhere.test'; },
  // Carrying the nonce of another sign-in.
  'kaas-nonce': (c) => { c.nonce = 'the-nonce-of-another-sign-in'; },
  // Carrying no nonce.
  'kaas-nononce': (c) => { delete c.nonce; },
  // Issued for kaas and another client, with no azp to say which of them asked for it.
  'kaas-multiaud': (c) => { c.aud = [c.aud, 'someone-else']; delete c.azp; },
  // Issued for kaas, but asked for by another client (azp).
  'kaas-azp': (c) => { c.azp = 'someone-else'; },
};

// Changes the claims of the ID token in the token response with `change`; signed again with
// the provider's key if `resign`, else sent with its original signature.
function rewriteIdToken(res, change, resign) {
  const end = res.end.bind(res);
  res.end = (chunk, ...rest) => {
    try {
      const body = JSON.parse(chunk.toString());
      if (body.id_token) {
        const [h, p, sig] = body.id_token.split('.');
        const claims = JSON.parse(Buffer.from(p, 'base64url').toString());
        change(claims);
        const payload = Buffer.from(JSON.stringify(claims)).toString('base64url');
        const signature = resign
          ? crypto.sign('sha256', Buffer.from(`${h}.${payload}`), signingKey).toString('base64url')
          : sig;
        body.id_token = [h, payload, signature].join('.');
        const out = JSON.stringify(body);
        res.setHeader('content-length', Buffer.byteLength(out));
        return end(out, ...rest);
      }
    } catch (e) { /* not JSON: sent as it was */ }
    return end(chunk, ...rest);
  };
}

// Reads the token request and alters its code_verifier (one character); the provider reads
// the form from `req.body` once the stream is consumed.
async function alterVerifier(req) {
  const body = await readBody(req);
  const v = body.get('code_verifier') || '';
  body.set('code_verifier', (v.startsWith('A') ? 'B' : 'A') + v.slice(1));
  req.body = body.toString();
}

const tls = process.env.TLS_CERT
  ? { cert: fs.readFileSync(process.env.TLS_CERT), key: fs.readFileSync(process.env.TLS_KEY) }
  : null;
const server = tls ? https.createServer(tls) : http.createServer();
server.listen(0, '127.0.0.1', () => {
  const { port } = server.address();
  const provider = new Provider(`${tls ? 'https' : 'http'}://127.0.0.1:${port}`, {
    clients: [
      ...['kaas', 'kaas-tamper', 'kaas-expired', 'kaas-pkce', ...Object.keys(rewrites)].map(client),
      {
        ...client('kaas-hs'),
        client_secret: 'kaas-hs-secret-0123456789-0123456789-0123456789',
        id_token_signed_response_alg: 'HS256',
      },
    ],
    jwks: { keys: [signingJwk] },
    pkce: { required: () => true },
    ttl: {
      IdToken: (ctx, token, client) => (client.clientId === 'kaas-expired' ? 1 : 3600),
    },
    enabledJWA: { idTokenSigningAlgValues: ['RS256', 'HS256'] },
    claims: {
      openid: ['sub'],
      email: ['email', 'email_verified'],
      profile: ['name'],
      groups: ['groups'],
    },
    // Claims of the requested scopes go into the ID token itself (kaas reads only it).
    conformIdTokenClaims: false,
    features: { devInteractions: { enabled: false } },
    interactions: { url: (ctx, interaction) => `/interaction/${interaction.uid}` },
    async findAccount(ctx, id) {
      const a = accounts[id];
      if (!a) return undefined;
      return { accountId: id, async claims() { return { sub: id, ...a }; } };
    },
  });
  const callback = provider.callback();
  server.on('request', async (req, res) => {
    // Browsers ask for one; a 404 would show as a console error in the browser tests.
    if (req.url === '/favicon.ico') {
      res.statusCode = 204;
      res.end();
      return undefined;
    }
    const m = req.url.match(/^\/interaction\/([^/?]+)(\/login)?/);
    if (!m) {
      const token = req.url.startsWith('/token') ? basicClient(req) : '';
      if (token === 'kaas-tamper') rewriteIdToken(res, (c) => { c.email = 'root@example.com'; }, false);
      if (rewrites[token]) rewriteIdToken(res, rewrites[token], true);
      if (token === 'kaas-pkce') await alterVerifier(req);
      if (token === 'kaas-expired') {
        const end = res.end.bind(res);
        res.end = (...args) => { setTimeout(() => end(...args), 2500); return res; };
      }
      return callback(req, res);
    }
    try {
      if (req.method === 'GET') {
        await provider.interactionDetails(req, res);
        res.setHeader('content-type', 'text/html');
        res.end(`<form method="post" action="/interaction/${m[1]}/login">`
          + '<input name="account"><button>Sign in</button></form>');
        return undefined;
      }
      const body = await readBody(req);
      const account = body.get('account');
      const { params } = await provider.interactionDetails(req, res);
      if (!accounts[account]) {
        res.statusCode = 400;
        res.end('unknown account');
        return undefined;
      }
      const grant = new provider.Grant({ accountId: account, clientId: params.client_id });
      grant.addOIDCScope(params.scope);
      const grantId = await grant.save();
      await provider.interactionFinished(req, res,
        { login: { accountId: account }, consent: { grantId } },
        { mergeWithLastSubmission: false });
    } catch (e) {
      res.statusCode = 500;
      res.end(String(e));
    }
    return undefined;
  });
  console.log(`listening on ${port}`);
});
