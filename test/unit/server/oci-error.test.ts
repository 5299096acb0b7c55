import { describe, expect, it } from 'vitest';
import { HostpullError } from '../../../src/errors.js';
import { RegistryError } from '../../../src/registry/index.js';
import { toOciError } from '../../../src/server/oci-error.js';

describe('toOciError', () => {
  it.each([
    ['TAG_INVALID', 400, 'TAG_INVALID'],
    ['ENV_CONFLICT', 400, 'TAG_INVALID'],
    ['NAME_INVALID', 400, 'NAME_INVALID'],
    ['DIGEST_INVALID', 400, 'DIGEST_INVALID'],
    ['MANIFEST_UNKNOWN', 404, 'MANIFEST_UNKNOWN'],
    ['BLOB_UNKNOWN', 404, 'BLOB_UNKNOWN'],
    ['NAME_UNKNOWN', 404, 'NAME_UNKNOWN'],
    ['UNSUPPORTED', 405, 'UNSUPPORTED'],
    ['UNAUTHORIZED', 401, 'UNAUTHORIZED'],
    ['PACKAGE_REFUSED', 400, 'MANIFEST_INVALID'],
    ['REGISTRY_UNAVAILABLE', 503, 'UNAVAILABLE'],
  ])('maps %s to %d %s', (code, status, ociCode) => {
    const r = toOciError(new HostpullError(code, `it is ${code}`, { details: { codeName: 'X1' } }));
    expect(r.status).toBe(status);
    expect(r.body).toEqual({ errors: [{ code: ociCode, message: `it is ${code}`, detail: { codeName: 'X1' } }] });
  });

  it('asks for a bearer token on 401', () => {
    expect(toOciError(new HostpullError('UNAUTHORIZED', 'no')).headers).toEqual({ 'WWW-Authenticate': 'Bearer realm="hostpull"' });
  });

  it('treats every registry-client error as a gateway problem, even a 401 upstream', () => {
    expect(toOciError(new RegistryError('UNAUTHORIZED', 'upstream said 401', { status: 401 })).status).toBe(502);
    expect(toOciError(new RegistryError('REGISTRY_UNAVAILABLE', 'connection refused')).status).toBe(503);
    expect(toOciError(new RegistryError('REGISTRY_UNAVAILABLE', 'HTTP 500', { status: 500 })).status).toBe(503);
  });

  it('hides the details of unexpected errors behind a 500', () => {
    const r = toOciError(new TypeError('secret internals'));
    expect(r.status).toBe(500);
    expect(JSON.stringify(r.body)).not.toContain('secret');
  });

  it('maps network failures to 503', () => {
    const err = Object.assign(new Error('connect'), { code: 'ECONNREFUSED' });
    expect(toOciError(new HostpullError('INTERNAL', 'wrapped', { cause: err })).status).toBe(503);
  });
});
