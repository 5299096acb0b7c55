/**
 * Package layers that break their claim (DESIGN §2 "The trust boundary"), one per rule, shared by
 * the tests that check every place a layer lands refuses them alike: registration and node
 * (isolation/package-claims), and a lazy start from the layer's TOC (lazy/lazy-claims, unit
 * lazy-claims).
 */
import { layerFromTar, type BuiltLayer } from './fixtures.js';
import { writeTar, type RawEntry } from './tar-writer.js';

/** A package archive for `prefix` (dirs above it neutral, a launcher inside) plus `extra` entries. */
export function packageLayer(prefix: string, extra: RawEntry[], head: RawEntry[] = [{ name: 'opt/', type: 'dir' }]): BuiltLayer {
  const p = prefix.slice(1);
  return layerFromTar(
    writeTar([
      ...head,
      { name: `${p}/`, type: 'dir' },
      { name: `${p}/bin/`, type: 'dir' },
      { name: `${p}/bin/tool`, type: 'file', mode: 0o755, content: '#!/bin/sh\necho tool\n' },
      ...extra,
    ]),
  );
}

export interface Hostile {
  code: string;
  prefix: string;
  /** The refusal's `details.rule`, and what the node's message says. */
  rule: string;
  message: RegExp;
  layer: BuiltLayer;
}

export const HOSTILE: Hostile[] = [
  {
    code: 'OUT1.0',
    prefix: '/opt/out-1.0',
    rule: 'outside-prefix',
    message: /"etc\/passwd": is outside the package's prefix \/opt\/out-1\.0/,
    layer: packageLayer('/opt/out-1.0', [{ name: 'etc/passwd', type: 'file', content: 'root::0:0::/root:/bin/sh\n' }]),
  },
  {
    code: 'DEV1.0',
    prefix: '/opt/dev-1.0',
    rule: 'device-in-package',
    message: /char device node in a package layer/,
    layer: packageLayer('/opt/dev-1.0', [{ name: 'opt/dev-1.0/mem', type: 'char', devmajor: 1, devminor: 1, mode: 0o666 }]),
  },
  {
    code: 'ROOT1.0',
    prefix: '/opt/root-1.0',
    rule: 'prefix-ancestor-metadata',
    message: /would change the mode or owner of \/ \(mode 777/,
    layer: packageLayer('/opt/root-1.0', [], [{ name: './', type: 'dir', mode: 0o777 }, { name: 'opt/', type: 'dir' }]),
  },
  {
    code: 'OPT1.0',
    prefix: '/opt/opt-1.0',
    rule: 'prefix-ancestor-metadata',
    message: /would change the mode or owner of \/opt \(mode 755, owner 1000:0/,
    layer: packageLayer('/opt/opt-1.0', [], [{ name: 'opt/', type: 'dir', uid: 1000 }]),
  },
  {
    code: 'SUID1.0',
    prefix: '/opt/suid-1.0',
    rule: 'setid-in-package',
    message: /"opt\/suid-1\.0\/bin\/su": is setuid\/setgid \(mode 4755\)/,
    layer: packageLayer('/opt/suid-1.0', [{ name: 'opt/suid-1.0/bin/su', type: 'file', mode: 0o4755, content: '#!/bin/sh\nid\n' }]),
  },
  {
    code: 'CAP1.0',
    prefix: '/opt/cap-1.0',
    rule: 'capability-in-package',
    message: /has file capabilities/,
    layer: packageLayer('/opt/cap-1.0', [
      { name: 'opt/cap-1.0/bin/ping', type: 'file', mode: 0o755, content: 'x', pax: { 'SCHILY.xattr.security.capability': Buffer.from('0100000200200000000000000000000000000000', 'hex') } },
    ]),
  },
];
