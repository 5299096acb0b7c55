import { execFile } from 'node:child_process';
import { createPrivateKey, randomBytes, sign, type KeyObject } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { json, startFakeServer, type FakeServer } from '../../unit/registry/fake-http.js';

const run = promisify(execFile);

export interface TokenServer extends FakeServer {
  /** PEM certificate to give the registry as `rootcertbundle`. */
  certPath: string;
  /** With `tls`: the PEM certificate (self-signed, for 127.0.0.1) the token server's https is served with. */
  tlsCertPath?: string;
  service: string;
  issuer: string;
  /** One entry per token issued: the scopes asked for, the user (or '' for anonymous). */
  issued: { user: string; scopes: string[] }[];
}

const b64url = (data: Buffer | string): string => Buffer.from(data).toString('base64url');

/**
 * A distribution token server (docs "Token Authentication Specification"): checks Basic
 * credentials, grants every asked action on `repository:` scopes to the one known user, and signs
 * an RS256 JWT whose `x5c` header carries a self-signed certificate that the registry trusts via
 * `rootcertbundle`. Anonymous callers get an error, so a registry behind it is private.
 */
export async function startTokenServer(dir: string, user: { user: string; password: string }, options: { tls?: boolean } = {}): Promise<TokenServer> {
  const keyPath = join(dir, 'token.key');
  const certPath = join(dir, 'token.crt');
  await run('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', keyPath, '-out', certPath, '-days', '2', '-subj', '/CN=hostpull-test-token']);
  const key: KeyObject = createPrivateKey(await readFile(keyPath));
  const certDer = (await readFile(certPath, 'utf8')).replace(/-----[^-]+-----/g, '').replace(/\s+/g, '');
  const service = 'hostpull-test-registry';
  const issuer = 'hostpull-test-issuer';
  const issued: TokenServer['issued'] = [];
  const expected = 'Basic ' + Buffer.from(`${user.user}:${user.password}`).toString('base64');

  let tls: { key: Buffer; cert: Buffer } | undefined;
  const tlsCertPath = join(dir, 'token-https.crt');
  if (options.tls) {
    const tlsKeyPath = join(dir, 'token-https.key');
    await run('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', tlsKeyPath, '-out', tlsCertPath, '-days', '2', '-subj', '/CN=127.0.0.1', '-addext', 'subjectAltName=IP:127.0.0.1']);
    tls = { key: await readFile(tlsKeyPath), cert: await readFile(tlsCertPath) };
  }

  const server = await startFakeServer((req, res) => {
    const u = new URL(req.url!, 'http://x');
    if (u.pathname !== '/token') return json(res, 404, {});
    if (req.headers.authorization !== expected) {
      return json(res, 401, { errors: [{ code: 'UNAUTHORIZED', message: 'bad or missing credentials' }] });
    }
    const scopes = u.searchParams.getAll('scope');
    issued.push({ user: user.user, scopes });
    const access = scopes.flatMap((s) => {
      const m = /^repository:(.+):([a-z*,]+)$/.exec(s);
      return m ? [{ type: 'repository', name: m[1]!, actions: m[2]!.split(',') }] : [];
    });
    const now = Math.floor(Date.now() / 1000);
    const header = { typ: 'JWT', alg: 'RS256', x5c: [certDer] };
    const claims = {
      iss: issuer,
      sub: user.user,
      aud: u.searchParams.get('service'),
      exp: now + 300,
      nbf: now - 10,
      iat: now,
      jti: randomBytes(8).toString('hex'),
      access,
    };
    const input = `${b64url(JSON.stringify(header))}.${b64url(JSON.stringify(claims))}`;
    const signature = sign('sha256', Buffer.from(input), key);
    json(res, 200, { token: `${input}.${b64url(signature)}`, expires_in: 300, issued_at: new Date().toISOString() });
  }, tls ? { tls } : {});
  return Object.assign(server, { certPath, service, issuer, issued }, options.tls ? { tlsCertPath } : {});
}
