import { describe, expect, it } from 'vitest';
import { HostpullError, isNoSpace } from '../../../src/errors.js';

function errno(code: string): NodeJS.ErrnoException {
  return Object.assign(new Error(`${code}: from the kernel`), { code });
}

describe('isNoSpace', () => {
  it('finds ENOSPC or EDQUOT on the error, in its cause chain, or in a wrapped errno detail', () => {
    expect(isNoSpace(errno('ENOSPC'))).toBe(true);
    expect(isNoSpace(errno('EDQUOT'))).toBe(true);
    const wrapped = new HostpullError('BLOB_FETCH_FAILED', 'fetching failed', { cause: new HostpullError('LAYER_WRITE_FAILED', 'cannot write', { cause: errno('ENOSPC') }) });
    expect(isNoSpace(wrapped)).toBe(true);
    expect(isNoSpace(new HostpullError('SYSCALL_FAILED', 'mknod', { details: { errno: 'ENOSPC' } }))).toBe(true);
  });

  it('is false for other errors and for non-errors', () => {
    expect(isNoSpace(errno('EACCES'))).toBe(false);
    expect(isNoSpace(new HostpullError('DIGEST_MISMATCH', 'bad', { cause: errno('EIO') }))).toBe(false);
    expect(isNoSpace(undefined)).toBe(false);
    expect(isNoSpace('ENOSPC')).toBe(false);
  });
});
