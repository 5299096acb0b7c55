import { execFile } from 'node:child_process';
import { readFile, writeFile } from 'node:fs/promises';
import { createServer } from 'node:https';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { connect, type SecureContext } from 'node:tls';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';
import { contextWithExtraCa, extraCaFiles } from '../../../src/registry/extra-ca.js';
import { useTempDir } from '../../helpers/tmp.js';

const run = promisify(execFile);

/** Connects to 127.0.0.1:`port` with `secureContext`: 'trusted', or the certificate error's code. */
function handshake(port: number, secureContext: SecureContext): Promise<string> {
  return new Promise((resolve) => {
    const socket = connect({ host: '127.0.0.1', port, secureContext, servername: 'localhost' }, () => {
      socket.end();
      resolve('trusted');
    });
    socket.once('error', (err: Error & { code?: string }) => resolve(err.code ?? err.message));
  });
}

describe('extra CA certificates (HOSTPULL_EXTRA_CA_CERTS)', () => {
  const tmp = useTempDir('extra-ca');

  it("names no file when Node's default is what TLS trusts, and keeps NODE_EXTRA_CA_CERTS beside ours", () => {
    expect(extraCaFiles({})).toEqual([]);
    expect(extraCaFiles({ NODE_EXTRA_CA_CERTS: '/n.pem' })).toEqual([]);
    expect(extraCaFiles({ HOSTPULL_EXTRA_CA_CERTS: '/h.pem' })).toEqual(['/h.pem']);
    // Our own context replaces the roots Node extended with NODE_EXTRA_CA_CERTS: both are read.
    expect(extraCaFiles({ HOSTPULL_EXTRA_CA_CERTS: '/h.pem', NODE_EXTRA_CA_CERTS: '/n.pem' })).toEqual(['/h.pem', '/n.pem']);
  });

  it('makes one context that trusts the files; an unreadable file is skipped with a warning', async () => {
    const dir = await tmp();
    const [key, cert] = [join(dir, 'server.key'), join(dir, 'server.crt')];
    await run('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', key, '-out', cert, '-days', '2', '-subj', '/CN=localhost', '-addext', 'subjectAltName=DNS:localhost']);
    const server = createServer({ key: await readFile(key), cert: await readFile(cert) }, (_req, res) => res.end());
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    try {
      const { port } = server.address() as AddressInfo;
      const warnings: unknown[] = [];
      const logger = { warn: (o: unknown) => warnings.push(o) } as never;
      const trusting = await contextWithExtraCa([join(dir, 'missing.pem'), cert], logger);
      expect(warnings).toEqual([expect.objectContaining({ file: join(dir, 'missing.pem') })]);
      // The same context serves every connection.
      expect([await handshake(port, trusting), await handshake(port, trusting)]).toEqual(['trusted', 'trusted']);
      await writeFile(join(dir, 'empty.pem'), '');
      expect(await handshake(port, await contextWithExtraCa([join(dir, 'empty.pem')], logger))).toBe('DEPTH_ZERO_SELF_SIGNED_CERT');
    } finally {
      server.closeAllConnections();
      await new Promise((r) => server.close(r));
    }
  });
});
