import { HostpullError } from '../errors.js';

/**
 * What the archive checks throw. The same archive gets the same code and `details.rule` from the
 * server's registration check and from the node's unpack, because both run this module:
 *  - LAYER_INVALID: malformed (bad checksum, truncated, unknown type…);
 *  - LAYER_AMBIGUOUS: well-formed, but tar readers disagree on what it contains (a parser
 *    differential an attacker can use to show the registration check one tree and a node another);
 *  - LAYER_UNSAFE: clear, but not allowed (`..`, outside the package's prefix, a device node…);
 *  - LAYER_QUOTA_EXCEEDED: over a bound (entries, bytes, header sizes, expansion ratio).
 */
export type ArchiveErrorCode = 'LAYER_INVALID' | 'LAYER_AMBIGUOUS' | 'LAYER_UNSAFE' | 'LAYER_QUOTA_EXCEEDED';

const ARCHIVE_ERROR_CODES: ReadonlySet<string> = new Set<ArchiveErrorCode>(['LAYER_INVALID', 'LAYER_AMBIGUOUS', 'LAYER_UNSAFE', 'LAYER_QUOTA_EXCEEDED']);

/** True for an error one of the archive checks threw (the layer itself is at fault). */
export function isArchiveError(err: unknown): err is HostpullError {
  return err instanceof HostpullError && ARCHIVE_ERROR_CODES.has(err.code);
}

export interface ArchiveErrorWhere {
  /** The entry as named in the archive (or normalised), when one is concerned. */
  entry?: string;
  /** Byte offset of the entry's header in the uncompressed stream. */
  offset?: number;
  /** More facts for `details` (the bound that was crossed…). */
  details?: Record<string, unknown>;
}

/**
 * `layer <where>: entry "<name>": <reason> (tar offset N)`, with `details.rule` naming the check
 * and `details.layerDir` the layer (a directory on a node, a digest on the server).
 */
export function archiveError(code: ArchiveErrorCode, layer: string, rule: string, reason: string, at: ArchiveErrorWhere = {}): HostpullError {
  const entry = at.entry === undefined ? '' : `entry ${JSON.stringify(at.entry)}: `;
  const offset = at.offset === undefined ? '' : ` (tar offset ${at.offset})`;
  return new HostpullError(code, `layer ${layer}: ${entry}${reason}${offset}`, {
    details: { layerDir: layer, rule, ...(at.entry === undefined ? {} : { entry: at.entry }), ...(at.offset === undefined ? {} : { offset: at.offset }), ...at.details },
  });
}
