import { describe, expect, it } from 'vitest';
import { EntryChecker, type CheckedEntry } from '../../../src/archive/entry-checker.js';
import { footprintViolation, type LayerFootprint } from '../../../src/archive/layer-footprint.js';
import type { PackageClaim } from '../../../src/archive/package-claim.js';
import type { TarEntryHeader, TarEntryType } from '../../../src/archive/tar-reader.js';
import { isHostpullError } from '../../../src/errors.js';

const JDK: PackageClaim = { code: 'JDK11.0', prefix: 'opt/jdk-11.0', allowSetuid: false };

interface E {
  name: string;
  type?: TarEntryType;
  mode?: number;
  uid?: number;
  linkname?: string;
  xattrs?: Record<string, string>;
}

function header(e: E, offset: number): TarEntryHeader {
  const type = e.type ?? 'file';
  return {
    name: e.name,
    type,
    mode: e.mode ?? (type === 'dir' ? 0o755 : 0o644),
    uid: e.uid ?? 0,
    gid: 0,
    size: 0,
    mtime: 0,
    atime: undefined,
    linkname: e.linkname ?? '',
    devmajor: 0,
    devminor: 0,
    xattrs: new Map(Object.entries(e.xattrs ?? {}).map(([k, v]) => [k, Buffer.from(v)])),
    offset,
  };
}

/** Runs entries through a checker; returns the refusal's rule, or the footprint when all pass. */
function check(entries: E[], claim: PackageClaim | null = JDK): { rule?: string; footprint?: LayerFootprint; checked: CheckedEntry[] } {
  const checked: CheckedEntry[] = [];
  const checker = new EntryChecker(
    { entry: (c) => checked.push(c), data: () => undefined, entryEnd: () => undefined },
    { where: 'sha256:test', maxEntries: 100, maxDepth: 64, maxBytes: 1 << 20, claim: claim ?? undefined },
  );
  try {
    entries.forEach((e, i) => checker.entry(header(e, i * 512)));
  } catch (err) {
    if (!isHostpullError(err)) throw err;
    return { rule: String(err.details?.rule), checked };
  }
  return { footprint: checker.footprint(), checked };
}

describe('EntryChecker with a package claim (the rules registration and unpack share)', () => {
  it.each<[string, E[], string | undefined]>([
    ['files inside the prefix', [{ name: 'opt/jdk-11.0/bin/java' }], undefined],
    ['neutral directories above it: ./, opt/', [{ name: './', type: 'dir' }, { name: 'opt/', type: 'dir' }, { name: 'opt/jdk-11.0/', type: 'dir', mode: 0o700 }], undefined],
    ['a file above the prefix', [{ name: 'opt' }], 'outside-prefix'],
    ['a prefix look-alike', [{ name: 'opt/jdk-11.0x/evil' }], 'outside-prefix'],
    ['elsewhere in the tree', [{ name: 'etc/passwd' }], 'outside-prefix'],
    ['a directory outside, even a neutral one', [{ name: 'usr/', type: 'dir' }], 'outside-prefix'],
    ['.. climbing out', [{ name: 'opt/jdk-11.0/../../etc/passwd' }], 'dot-dot'],
    ['chmod of /', [{ name: './', type: 'dir', mode: 0o777 }], 'prefix-ancestor-metadata'],
    ['chown of /opt', [{ name: 'opt/', type: 'dir', uid: 1000 }], 'prefix-ancestor-metadata'],
    ['xattrs on /opt', [{ name: 'opt/', type: 'dir', xattrs: { 'user.x': '1' } }], 'prefix-ancestor-metadata'],
    ['a symlink to anywhere, inside the prefix', [{ name: 'opt/jdk-11.0/link', type: 'symlink', linkname: '/etc/shadow' }], undefined],
    ['a hardlink to outside', [{ name: 'opt/jdk-11.0/hard', type: 'hardlink', linkname: 'etc/shadow' }], 'outside-prefix'],
    ['a device node inside the prefix', [{ name: 'opt/jdk-11.0/mem', type: 'char' }], 'device-in-package'],
    ['a fifo inside the prefix', [{ name: 'opt/jdk-11.0/fifo', type: 'fifo' }], 'device-in-package'],
    ['a setuid file', [{ name: 'opt/jdk-11.0/bin/su', mode: 0o4755 }], 'setid-in-package'],
    ['a setgid file', [{ name: 'opt/jdk-11.0/bin/sg', mode: 0o2755 }], 'setid-in-package'],
    ['a setgid directory (group inheritance, not privilege)', [{ name: 'opt/jdk-11.0/shared/', type: 'dir', mode: 0o2775 }], undefined],
    ['file capabilities', [{ name: 'opt/jdk-11.0/bin/ping', xattrs: { 'security.capability': '\x01' } }], 'capability-in-package'],
    ['a whiteout outside', [{ name: 'opt/.wh.other' }], 'outside-prefix'],
    ['an opaque marker at the root', [{ name: '.wh..wh..opq' }], 'outside-prefix'],
    ['a whiteout inside', [{ name: 'opt/jdk-11.0/.wh.old' }], undefined],
  ])('%s', (_what, entries, rule) => {
    expect(check(entries).rule).toBe(rule);
  });

  it('setuid and capabilities pass when the catalog entry allows them, and are recorded', () => {
    const r = check([{ name: 'opt/jdk-11.0/bin/su', mode: 0o4755 }, { name: 'opt/jdk-11.0/bin/ping', xattrs: { 'security.capability': 'x' } }], { ...JDK, allowSetuid: true });
    expect(r.rule).toBeUndefined();
    expect(r.footprint).toMatchObject({ setid: ['opt/jdk-11.0/bin/su'], capabilities: ['opt/jdk-11.0/bin/ping'] });
  });

  it('marks neutral directories above the prefix so the writer gives them no metadata', () => {
    const r = check([{ name: 'opt/', type: 'dir' }, { name: 'opt/jdk-11.0/', type: 'dir' }]);
    expect(r.checked.map((c) => [c.path, c.prefixAncestor])).toEqual([
      ['opt', true],
      ['opt/jdk-11.0', false],
    ]);
  });

  it('without a footprint (a lazy view\'s tree) holds entries to the same rules, and has none to give', () => {
    const make = () =>
      new EntryChecker({ entry: () => undefined, data: () => undefined, entryEnd: () => undefined }, { where: 'sha256:test', maxEntries: 100, maxDepth: 64, maxBytes: 1 << 20, claim: JDK, footprint: false });
    const checker = make();
    checker.entry(header({ name: 'opt/jdk-11.0/bin/java' }, 0));
    expect(() => checker.footprint()).toThrow(/collects no footprint/);
    expect(() => make().entry(header({ name: 'opt/jdk-11.0/bin/su', mode: 0o4755 }, 0))).toThrow(expect.objectContaining({ code: 'LAYER_UNSAFE' }));
    expect(() => make().entry(header({ name: 'etc/passwd' }, 0))).toThrow(expect.objectContaining({ code: 'LAYER_UNSAFE' }));
  });
});

describe('footprint: a layer checked against a claim from its record', () => {
  /** The footprint of a base layer (no claim) must give the same verdict as checking its entries under the claim. */
  it.each<[string, E[]]>([
    ['a clean package', [{ name: './', type: 'dir' }, { name: 'opt/', type: 'dir' }, { name: 'opt/jdk-11.0/', type: 'dir' }, { name: 'opt/jdk-11.0/bin/java' }, { name: 'opt/jdk-11.0/lib/x' }]],
    ['a package with one deep file', [{ name: 'opt/jdk-11.0/a/b/c' }]],
    ['writes /etc', [{ name: 'opt/jdk-11.0/x' }, { name: 'etc/passwd' }]],
    ['chmod of /opt', [{ name: 'opt/', type: 'dir', mode: 0o777 }, { name: 'opt/jdk-11.0/x' }]],
    ['a neutral directory beside the prefix', [{ name: 'opt/other/', type: 'dir' }, { name: 'opt/jdk-11.0/x' }]],
    ['only neutral directories, one outside', [{ name: 'opt/', type: 'dir' }, { name: 'usr/', type: 'dir' }]],
    ['a device node', [{ name: 'opt/jdk-11.0/mem', type: 'char' }]],
    ['a setuid file', [{ name: 'opt/jdk-11.0/su', mode: 0o4755 }]],
    ['capabilities', [{ name: 'opt/jdk-11.0/ping', xattrs: { 'security.capability': 'x' } }]],
    ['a whiteout outside', [{ name: 'opt/jdk-11.0/x' }, { name: 'etc/.wh.passwd' }]],
    ['a hardlink to outside', [{ name: 'etc/shadow' }, { name: 'opt/jdk-11.0/s', type: 'hardlink', linkname: 'etc/shadow' }]],
  ])('%s', (_what, entries) => {
    const direct = check(entries, JDK).rule;
    const recorded = check(entries, null).footprint!;
    const fromRecord = footprintViolation(recorded, JDK);
    expect(fromRecord === undefined).toBe(direct === undefined);
    expect(footprintViolation(recorded, { ...JDK, prefix: 'opt/other-1.0' })).toBeDefined();
  });
});
