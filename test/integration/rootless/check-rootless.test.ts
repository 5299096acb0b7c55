/**
 * checkRootless and the helper protocol's error round trip, in-process (the CLI-level tests are
 * in rootless-run.test.ts).
 */
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { HostpullError, isHostpullError } from '../../../src/errors.js';
import { checkRootless, ROOTLESS_HINT, rootlessDiagnostics } from '../../../src/rootless/check-rootless.js';
import { errorFromMessage, errorMessage } from '../../../src/rootless/protocol.js';
import { makeTempDir, removeTempDir } from '../../helpers/tmp.js';

async function rejection(p: Promise<unknown>): Promise<HostpullError> {
  try {
    await p;
  } catch (err) {
    if (isHostpullError(err)) return err;
    throw err;
  }
  throw new Error('expected a rejection');
}

describe('checkRootless', () => {
  it('passes where unshare can create a user and mount namespace (this kernel)', async () => {
    await expect(checkRootless()).resolves.toBeUndefined();
  });

  it('gives ROOTLESS_UNAVAILABLE with the hint when unshare fails', async () => {
    const err = await rejection(checkRootless({ unshare: '/bin/false' }));
    expect(err.code).toBe('ROOTLESS_UNAVAILABLE');
    expect(err.message).toMatch(/^rootless run needs unprivileged user namespaces and overlayfs in a user namespace \(Linux ≥ 5\.11\): /);
    expect(err.message).toContain('/bin/false --user --map-root-user --mount --propagation private failed (exit status 1)');
    expect(err.hint).toBe(ROOTLESS_HINT);
  });

  it('reports unshare\'s own message', async () => {
    // A stand-in that fails the way util-linux's unshare does when the kernel refuses.
    const dir = await makeTempDir('fake-unshare');
    try {
      const fake = join(dir, 'unshare');
      await writeFile(fake, '#!/bin/sh\necho "unshare: unshare failed: Operation not permitted" >&2\nexit 1\n', { mode: 0o755 });
      const err = await rejection(checkRootless({ unshare: fake }));
      expect(err.code).toBe('ROOTLESS_UNAVAILABLE');
      expect(err.message).toMatch(/\(Linux ≥ 5\.11\): .*\/unshare: unshare failed: Operation not permitted$/);
      expect(err.hint).toBe(ROOTLESS_HINT);
    } finally {
      await removeTempDir(dir);
    }
  });

  it('gives ROOTLESS_UNAVAILABLE when there is no unshare at all', async () => {
    const err = await rejection(checkRootless({ unshare: '/nonexistent/unshare' }));
    expect(err.code).toBe('ROOTLESS_UNAVAILABLE');
    expect(err.message).toMatch(/cannot execute \/nonexistent\/unshare \(util-linux\): ENOENT/);
  });

  it('lists no denying setting on this host', () => {
    expect(rootlessDiagnostics()).toEqual([]);
  });
});

describe('helper protocol errors', () => {
  it('keep code, message, hint and details across the channel', () => {
    const original = new HostpullError('RUNTIME_FAILED', 'runc 1.1.5: boom', { hint: 'try crun', details: { exitCode: 1 }, cause: new Error('x') });
    const m = JSON.parse(JSON.stringify(errorMessage(original))) as ReturnType<typeof errorMessage>;
    expect(m.type).toBe('error');
    const back = errorFromMessage(m as Extract<typeof m, { type: 'error' }>);
    expect({ code: back.code, message: back.message, hint: back.hint, details: back.details }).toEqual({
      code: 'RUNTIME_FAILED',
      message: 'runc 1.1.5: boom',
      hint: 'try crun',
      details: { exitCode: 1 },
    });
  });

  it('wrap a foreign error as ROOTLESS_CHILD_FAILED', () => {
    expect(errorMessage(new TypeError('bad'))).toEqual({ type: 'error', code: 'ROOTLESS_CHILD_FAILED', message: 'bad' });
  });
});
