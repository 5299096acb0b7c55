/**
 * Parser-differential archives: tars that different readers read as different trees. Each one is
 * a package layer for `/opt/diff-1.0` that a lenient or differently-written reader (node-tar, Go's
 * archive/tar, GNU tar, an older hostpull) would see inside its prefix while another sees a write
 * to `/etc/passwd` (or a hidden entry). hostpull's one reader must refuse each as LAYER_AMBIGUOUS
 * with the rule named here, at registration and on the node alike.
 */
import { metaEntry, paxBody, tarEnd, tarEntry } from './tar-writer.js';

export const DIFF_PREFIX = '/opt/diff-1.0';
const P = 'opt/diff-1.0';

export interface DifferentialCase {
  /** Short id, usable in a tag (`[a-z0-9-]`). */
  id: string;
  /** What readers disagree about. */
  what: string;
  /** `details.rule` of the refusal. */
  rule: string;
}

interface CaseWithTar extends DifferentialCase {
  tar: Buffer;
}

const file = (name: string, content = 'x', extra: Record<string, unknown> = {}) => tarEntry({ name, type: 'file', ...extra }, content);
const head = () => [tarEntry({ name: 'opt/', type: 'dir' }), tarEntry({ name: `${P}/`, type: 'dir' }), file(`${P}/ok`, 'fine\n')];
const archive = (...parts: Buffer[]) => Buffer.concat([...head(), ...parts, tarEnd()]);

export const DIFFERENTIAL_CASES: CaseWithTar[] = [
  {
    id: 'pax-dup-path',
    what: 'two path records in one PAX header (first wins for some readers, last for others)',
    rule: 'pax-duplicate-keyword',
    tar: archive(metaEntry('x', paxBody([['path', `${P}/a`], ['path', 'etc/passwd']])), file(`${P}/a`)),
  },
  {
    id: 'pax-then-longname',
    what: 'a PAX path followed by a GNU long-name header for the same entry',
    rule: 'pax-and-gnu-name',
    tar: archive(metaEntry('x', paxBody([['path', `${P}/a`]])), metaEntry('L', 'etc/passwd\0'), file(`${P}/a`)),
  },
  {
    id: 'longname-then-pax',
    what: 'a GNU long-name header followed by a PAX path for the same entry',
    rule: 'pax-and-gnu-name',
    tar: archive(metaEntry('L', 'etc/passwd\0'), metaEntry('x', paxBody([['path', `${P}/a`]])), file(`${P}/a`)),
  },
  {
    id: 'two-pax-headers',
    what: 'two PAX extended headers in a row before one entry',
    rule: 'repeated-extended-header',
    tar: archive(metaEntry('x', paxBody([['path', `${P}/a`]])), metaEntry('x', paxBody([['path', 'etc/passwd']])), file(`${P}/a`)),
  },
  {
    id: 'two-longnames',
    what: 'two GNU long-name headers in a row before one entry',
    rule: 'repeated-extended-header',
    tar: archive(metaEntry('L', `${P}/a\0`), metaEntry('L', 'etc/passwd\0'), file(`${P}/a`)),
  },
  {
    id: 'newline-in-pax-path',
    what: 'a PAX path whose value holds a newline and a forged record (readers that split on newlines see path=etc/passwd)',
    rule: 'newline-in-value',
    tar: archive(metaEntry('x', paxBody([['path', `${P}/a\n19 path=etc/passwd`]])), file(`${P}/a`)),
  },
  {
    id: 'newline-in-longname',
    what: 'a GNU long name holding a newline (line-oriented records would read two paths)',
    rule: 'newline-in-name',
    tar: archive(metaEntry('L', `${P}/a\netc/passwd\0`), file(`${P}/a`)),
  },
  {
    id: 'prefix-bad-version',
    what: 'a ustar prefix field under magic "ustar\\0" without version "00" (applied by some readers only)',
    rule: 'prefix-without-ustar00',
    tar: archive(tarEntry({ name: 'passwd', type: 'file', magic: 'ustar\0', version: 'xx', prefixField: 'etc' }, 'x')),
  },
  {
    id: 'prefix-in-v7',
    what: 'bytes in the prefix field of a v7 header (no magic)',
    rule: 'prefix-without-ustar00',
    tar: archive(tarEntry({ name: `${P}/b`, type: 'file', magic: '\0\0\0\0\0\0', version: '\0\0', prefixField: '../../etc' }, 'x')),
  },
  {
    id: 'prefix-in-gnu',
    what: 'a name in the prefix field of a GNU header (where GNU keeps atime/ctime)',
    rule: 'prefix-without-ustar00',
    tar: archive(tarEntry({ name: 'passwd', type: 'file', magic: 'ustar ', version: ' \0', prefixField: 'etc' }, 'x')),
  },
  {
    id: 'global-path',
    what: 'a global PAX header setting path for every following entry',
    rule: 'global-path',
    tar: archive(metaEntry('g', paxBody([['path', 'etc/passwd']])), file(`${P}/a`)),
  },
  {
    id: 'global-between',
    what: 'a global PAX header between an extended header and its entry',
    rule: 'global-header-between',
    tar: archive(metaEntry('x', paxBody([['path', `${P}/a`]])), metaEntry('g', paxBody([['comment', 'c']])), file('etc/passwd')),
  },
  {
    id: 'empty-pax-path',
    what: 'an empty PAX path (POSIX: use the header name etc/passwd; Go: an empty name)',
    rule: 'empty-pax-value',
    tar: archive(metaEntry('x', paxBody([['path', '']])), file('etc/passwd')),
  },
  {
    id: 'data-on-dir',
    what: 'a directory entry carrying data that hides another entry (skipped by some readers, read by others)',
    rule: 'data-on-header-only-entry',
    tar: archive(tarEntry({ name: `${P}/d/`, type: 'dir' }, tarEntry({ name: 'etc/passwd', type: 'file' }, 'x'))),
  },
  {
    id: 'slash-on-file',
    what: 'a regular file whose name ends with "/" (a directory to GNU tar)',
    rule: 'slash-on-non-directory',
    tar: archive(file(`${P}/x/`, 'x')),
  },
];
