// A real OAuth 2 authorization server for the tests: npm `oauth2-mock-server` (PKCE S256
// checked, JWTs signed with its JWKS, authorization code, refresh token and client credentials
// grants), with what a production server adds and the tests need:
// - RFC 8414 metadata at /.well-known/oauth-authorization-server naming the client
//   authentication methods it takes, and `iss` on the authorization redirect (RFC 9207);
// - client secrets checked (CLIENT_SECRET): a wrong one is `401 invalid_client`;
// - the token's `aud` is the `resource` asked for (RFC 8707); tokens live TOKEN_TTL seconds;
// - every token request counted by grant type, readable as JSON at the COUNTS port.
// Run with OAUTH2_MOCK_SERVER=<node_modules>/oauth2-mock-server/dist/index.mjs.
// Prints one JSON line `{"issuer": …, "counts": …}` when ready. Stops with its parent's stdin.
import { randomUUID } from 'node:crypto';
import http from 'node:http';

// Where scripts/test.sh installed the package (ES modules do not read NODE_PATH).
const { OAuth2Server } = await import(process.env.OAUTH2_MOCK_SERVER ?? 'oauth2-mock-server');

const secret = process.env.CLIENT_SECRET ?? 'top-secret';
const ttl = Number(process.env.TOKEN_TTL ?? '3600');
const counts = { token: 0 };

const server = new OAuth2Server();
await server.issuer.keys.generate('RS256');
const service = server.service;

service.on('beforeTokenSigning', (token, req) => {
  const resource = req.body?.resource;
  if (resource) token.payload.aud = resource;
  token.payload.exp = token.payload.iat + ttl;
  // Two tokens asked for in one second differ (the mock's JWTs are otherwise identical).
  token.payload.jti = randomUUID();
});
service.on('beforeResponse', (response, req) => {
  const grant = req.body?.grant_type ?? 'unknown';
  counts.token += 1;
  counts[grant] = (counts[grant] ?? 0) + 1;
  const presented = req.body?.client_secret
    ?? (req.headers.authorization?.startsWith('Basic ')
      ? Buffer.from(req.headers.authorization.slice(6), 'base64').toString().split(':').slice(1).join(':')
      : undefined);
  if (grant === 'client_credentials' && presented !== secret) {
    response.statusCode = 401;
    response.body = { error: 'invalid_client', error_description: 'wrong client secret' };
    return;
  }
  if (response.body && typeof response.body === 'object') response.body.expires_in = ttl;
});
service.on('beforeAuthorizeRedirect', (redirect) => {
  redirect.url.searchParams.set('iss', server.issuer.url);
});

// RFC 8414 metadata in front of the mock's own routes (which end in a catch-all 404).
const metadata = (issuer) => ({
  issuer,
  authorization_endpoint: `${issuer}/authorize`,
  token_endpoint: `${issuer}/token`,
  jwks_uri: `${issuer}/jwks`,
  revocation_endpoint: `${issuer}/revoke`,
  response_types_supported: ['code'],
  grant_types_supported: ['authorization_code', 'refresh_token', 'client_credentials'],
  token_endpoint_auth_methods_supported: ['client_secret_post', 'client_secret_basic', 'none'],
  code_challenge_methods_supported: ['S256'],
  authorization_response_iss_parameter_supported: true,
});
const oauth = http.createServer((req, res) => {
  if (req.method === 'GET' && req.url === '/.well-known/oauth-authorization-server') {
    res.setHeader('content-type', 'application/json');
    res.end(JSON.stringify(metadata(server.issuer.url)));
    return;
  }
  service.requestHandler(req, res);
});
await new Promise((resolve) => oauth.listen(0, '127.0.0.1', resolve));
server.issuer.url = `http://127.0.0.1:${oauth.address().port}`;

const countsServer = http.createServer((_req, res) => {
  res.setHeader('content-type', 'application/json');
  res.end(JSON.stringify(counts));
});
await new Promise((resolve) => countsServer.listen(0, '127.0.0.1', resolve));
console.log(JSON.stringify({ issuer: server.issuer.url, counts: `http://127.0.0.1:${countsServer.address().port}` }));

process.stdin.resume();
process.stdin.on('end', () => {
  countsServer.close();
  oauth.close();
  process.exit(0);
});
