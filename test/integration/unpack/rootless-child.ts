/**
 * Run by rootless-whiteouts.test.ts as an unprivileged user (setpriv): applies a small layer with
 * whiteouts into argv[2] with applyLayer's defaults for a non-root process, prints the result.
 */
import { Readable } from 'node:stream';
import { applyLayer } from '../../../src/unpack/index.js';
import { writeTar } from '../../helpers/tar-writer.js';

const tar = writeTar([
  { name: 'etc/', type: 'dir' },
  { name: 'etc/.wh.gone', type: 'file' },
  { name: 'etc/kept', type: 'file', content: 'upper', uid: 0, gid: 0, mode: 0o644 },
  { name: 'd/', type: 'dir' },
  { name: 'd/.wh..wh..opq', type: 'file' },
  { name: 'd/new', type: 'file', content: 'new' },
]);
const target = process.argv[2];
if (!target) throw new Error('usage: rootless-child <target>');
applyLayer(Readable.from([tar]), { compression: 'none', target }).then(
  (r) => process.stdout.write(JSON.stringify(r)),
  (err: unknown) => {
    process.stderr.write(String(err));
    process.exitCode = 1;
  },
);
