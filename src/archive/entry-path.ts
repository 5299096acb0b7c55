/** Linux PATH_MAX (bytes, including the terminating NUL) and NAME_MAX. */
export const PATH_MAX = 4096;
const NAME_MAX = 255;

/** An empty, `.` or `..` component (or an empty name): the name needs the full normalisation. */
const NOT_CLEAN = /(?:^|\/)\.{0,2}(?:\/|$)/;

/**
 * Normalises an archive name to a relative path inside the layer root: `./a//b/` → `a/b`, and `''`
 * for the root itself (`./`, `.`). Returns the reason for refusal instead of a path when the name is
 * absolute, contains a `..` component or NUL, or exceeds PATH_MAX, NAME_MAX or `maxDepth`.
 *
 * Absolute names are refused rather than stripped (GNU tar strips them with a warning): an OCI
 * layer writer never produces them, so one is a sign of a crafted archive.
 */
export function normaliseEntryPath(raw: string, maxDepth: number): string | { refused: string; rule: string } {
  if (raw.includes('\0')) return { refused: 'name contains NUL', rule: 'nul-in-name' };
  if (raw.startsWith('/')) return { refused: 'absolute name', rule: 'absolute-name' };
  const bytes = Buffer.byteLength(raw);
  if (bytes >= PATH_MAX) return { refused: `name longer than PATH_MAX (${PATH_MAX} bytes)`, rule: 'name-too-long' };
  // Most names are already clean (no empty, `.` or `..` component, at most one trailing slash,
  // short): they are their own normal form. Splitting and joining each of Go 1.19's 13.6k names
  // was a quarter of building a lazy layer's tree.
  const trimmed = raw.endsWith('/') ? raw.slice(0, -1) : raw;
  if (bytes <= NAME_MAX && !NOT_CLEAN.test(trimmed)) {
    let depth = 1;
    for (let i = trimmed.indexOf('/'); i >= 0; i = trimmed.indexOf('/', i + 1)) depth++;
    if (depth > maxDepth) return { refused: `name deeper than ${maxDepth} components`, rule: 'too-deep' };
    return trimmed;
  }
  const parts: string[] = [];
  for (const part of raw.split('/')) {
    if (part === '' || part === '.') continue;
    if (part === '..') return { refused: 'name contains a ".." component', rule: 'dot-dot' };
    if (Buffer.byteLength(part) > NAME_MAX) return { refused: `name component longer than NAME_MAX (${NAME_MAX} bytes)`, rule: 'name-too-long' };
    parts.push(part);
  }
  if (parts.length > maxDepth) return { refused: `name deeper than ${maxDepth} components`, rule: 'too-deep' };
  return parts.join('/');
}

/** Parent of a normalised path (`''` for top-level names and for the root). */
export function parentOf(path: string): string {
  const i = path.lastIndexOf('/');
  return i < 0 ? '' : path.slice(0, i);
}

export function baseOf(path: string): string {
  return path.slice(path.lastIndexOf('/') + 1);
}

/** `path` equals `prefix` or lies below it (both normalised). */
export function isWithin(path: string, prefix: string): boolean {
  return prefix === '' || path === prefix || (path.length > prefix.length && path.startsWith(prefix) && path.charCodeAt(prefix.length) === 0x2f);
}
