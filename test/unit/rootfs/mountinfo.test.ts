import { describe, expect, it } from 'vitest';

import { parseMountInfo, unescapeMountPath } from '../../../src/rootfs/mountinfo.js';

// Lines in the format of proc(5), including optional fields and escaped characters.
const SAMPLE = [
  '22 1 253:0 / / rw,relatime shared:1 - ext4 /dev/vda rw',
  '36 22 0:31 / /tmp/my\\040dir rw,nosuid master:3 shared:7 - tmpfs my\\011src rw,size=10k',
  '40 36 0:40 / /tmp/my\\040dir/ov rw,relatime - overlay overlay rw,lowerdir=/a:/b,upperdir=/u,workdir=/w',
  '41 36 0:41 /sub\\134dir /tmp/my\\040dir/b\\012c ro - ext4 /dev/vda ro',
  '',
].join('\n');

describe('parseMountInfo', () => {
  it('parses ids, paths, options and the fields after the separator', () => {
    const m = parseMountInfo(SAMPLE);
    expect(m).toHaveLength(4);
    expect(m[0]).toEqual({
      id: 22,
      parentId: 1,
      root: '/',
      mountPoint: '/',
      options: 'rw,relatime',
      fsType: 'ext4',
      source: '/dev/vda',
      superOptions: 'rw',
    });
    expect(m[1]!.mountPoint).toBe('/tmp/my dir');
    expect(m[1]!.source).toBe('my\tsrc');
    expect(m[1]!.fsType).toBe('tmpfs');
    expect(m[2]!.superOptions).toBe('rw,lowerdir=/a:/b,upperdir=/u,workdir=/w');
    expect(m[3]!.root).toBe('/sub\\dir');
    expect(m[3]!.mountPoint).toBe('/tmp/my dir/b\nc');
  });

  it('unescapes octal sequences only', () => {
    expect(unescapeMountPath('a\\040b\\134c\\d')).toBe('a b\\c\\d');
  });
});
