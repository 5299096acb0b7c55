import { z } from 'zod';
import { HostpullError } from '../errors.js';
import { UPSTREAM_IMAGE_RE, withoutUpstreamHost } from './upstream-image-name.js';
import type { Upstream } from './upstream.js';

/** DESIGN §1: a code name is letters, digits, `.` and `_` — never `-`, which joins code names. */
export const CODE_NAME_RE = /^[A-Za-z0-9._]+$/;
const ENV_NAME_RE = /^[A-Za-z_][A-Za-z0-9_]*$/;

const catalogEntrySchema = z.object({
  /** The package image in the upstream, `repository:tag` (or `repository@digest`). */
  image: z.string().min(1).max(512).regex(UPSTREAM_IMAGE_RE, 'must be repository:tag or repository@sha256:…'),
  /** The one directory the package's layer owns, e.g. /opt/jdk-11.0. */
  prefix: z.string().regex(/^(?:\/[A-Za-z0-9._+@-]+)+$/, 'must be an absolute path without . or .. components').refine((p) => !p.split('/').some((c) => c === '.' || c === '..'), 'must not contain . or .. components'),
  env: z.record(z.string().regex(ENV_NAME_RE, 'not a valid variable name'), z.string()).default({}),
  pathAdd: z.array(z.string().regex(/^\/[^:]*$/, 'must be an absolute path without :')).default([]),
  description: z.string().max(1000).optional(),
  /** Exclusivity group: two code names of one group cannot be combined (JDK11.0 and JDK17.0). */
  group: z.string().regex(/^[A-Za-z0-9._-]{1,64}$/).optional(),
  /**
   * The package may hold setuid/setgid files and file capabilities (`--allow-setuid`); without
   * it, registration and every node refuse them. Shown by `hostpull inspect`.
   */
  allowSetuid: z.boolean().optional(),
  /**
   * The package's manifest digest, pinned by the server at registration: composites are built
   * from it, so a tag moved afterwards changes nothing until the code name is registered again
   * (and checked again). Set by the server; a static catalog file may set it by hand.
   */
  digest: z.string().regex(/^sha256:[a-f0-9]{64}$/, 'must be sha256:<64 hex>').optional(),
});

export type CatalogEntry = z.infer<typeof catalogEntrySchema>;
/**
 * Code name → entry. A Map, never a plain object: a code name such as `__proto__` or
 * `constructor` must be an unknown key, not a lookup into Object.prototype.
 */
export type CatalogEntries = ReadonlyMap<string, CatalogEntry>;

/**
 * A code name that can be registered: the grammar above, not starting with '.', at most 128
 * characters — so that it is a valid OCI tag on its own (the catalog stores it as one).
 */
export function isCodeName(code: string): boolean {
  return code.length <= 128 && CODE_NAME_RE.test(code) && !code.startsWith('.');
}

export function validateCodeName(code: string): string {
  if (!isCodeName(code)) {
    throw new HostpullError('NAME_INVALID', `code name ${JSON.stringify(code.slice(0, 200))} must be 1-128 characters of [A-Za-z0-9._] (no '-'), not starting with '.'`);
  }
  return code;
}

/**
 * Validates one entry (from a request body or a catalog file); the message says which field is
 * wrong. With `upstream`, an image named with the upstream's own host is taken as the upstream
 * names it, and one naming another registry is refused (upstream-image-name.ts).
 */
export function parseCatalogEntry(code: string, value: unknown, upstream?: Pick<Upstream, 'registry' | 'location'>): CatalogEntry {
  validateCodeName(code);
  if (upstream && typeof value === 'object' && value !== null && typeof (value as { image?: unknown }).image === 'string') {
    const image = (value as { image: string }).image;
    value = { ...value, image: withoutUpstreamHost(image, upstream, `catalog entry ${code}: image`, 'CATALOG_INVALID') };
  }
  const r = catalogEntrySchema.safeParse(value);
  if (!r.success) {
    const why = r.error.issues.slice(0, 5).map((i) => `${i.path.join('.') || '(entry)'}: ${i.message}`).join('; ');
    throw new HostpullError('CATALOG_INVALID', `catalog entry ${code}: ${why}`);
  }
  if (r.data.env.PATH !== undefined) {
    throw new HostpullError('CATALOG_INVALID', `catalog entry ${code}: set PATH through pathAdd, not env`);
  }
  return r.data;
}

/** Validates a whole catalog document `{ entries: { CODE: entry } }` or a bare `{ CODE: entry }` map. */
export function parseCatalogDocument(value: unknown, what = 'catalog', upstream?: Pick<Upstream, 'registry' | 'location'>): CatalogEntries {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    throw new HostpullError('CATALOG_INVALID', `${what} is not a JSON object`);
  }
  const obj = value as Record<string, unknown>;
  const raw = Object.hasOwn(obj, 'entries') && typeof obj.entries === 'object' && obj.entries !== null ? (obj.entries as Record<string, unknown>) : obj;
  const out = new Map<string, CatalogEntry>();
  for (const [code, entry] of Object.entries(raw).sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0))) out.set(code, parseCatalogEntry(code, entry, upstream));
  return out;
}

/** The entries as a JSON object (for the API), built so that no key can reach a prototype. */
export function catalogEntriesJson(entries: CatalogEntries): Record<string, CatalogEntry> {
  return Object.fromEntries(entries);
}
