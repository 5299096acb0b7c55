/**
 * PAX extended header records (POSIX.1-2001 `pax` "extended header"): `"<len> <key>=<value>\n"`,
 * where `<len>` counts the whole record. Values stay raw bytes: `SCHILY.xattr.*` values are binary
 * (`security.capability` is a packed struct), which is why node-tar's string-based parser, which
 * also drops unknown keys, cannot serve a container layer.
 */
export type PaxRecords = Map<string, Buffer>;

/** Why a PAX body was refused: `rule` is stable (it names the check), `message` says where. */
export class PaxRecordError extends Error {
  readonly rule: string;
  /** True when the body is well-formed but readers disagree on what it means. */
  readonly ambiguous: boolean;

  constructor(rule: string, message: string, ambiguous = false) {
    super(message);
    this.rule = rule;
    this.ambiguous = ambiguous;
  }
}

export interface ParsePaxOptions {
  /** Records accepted in one header. Default 1,000 (a file's xattrs and ACLs are a handful). */
  maxRecords?: number;
}

const SPACE = 0x20;
const EQUALS = 0x3d;
const NEWLINE = 0x0a;

/**
 * Keywords whose values are binary and may hold any byte, newline included. Every other value is
 * text where a newline has no business: readers that split a PAX body on newlines (node-tar did)
 * would see a forged record inside such a value, so one is refused as ambiguous.
 */
function valueMayHoldNewline(key: string): boolean {
  return key.startsWith('SCHILY.xattr.') || key.startsWith('LIBARCHIVE.xattr.');
}

/**
 * Parses a PAX body; throws PaxRecordError (the caller names the entry and the layer). A keyword
 * that appears twice in one header is refused: readers disagree on which one wins (first for
 * some, last for others), so a second `path` record could name a different file for each.
 */
export function parsePaxRecords(body: Buffer, options: ParsePaxOptions = {}): PaxRecords {
  const maxRecords = options.maxRecords ?? 1000;
  const records: PaxRecords = new Map();
  let pos = 0;
  // A trailing run of NULs is padding written by some producers; anything else must parse.
  while (pos < body.length && body[pos] !== 0) {
    const space = body.indexOf(SPACE, pos);
    if (space < 0 || space === pos || space - pos > 20) throw new PaxRecordError('pax-malformed', `malformed PAX record at byte ${pos}`);
    const lenText = body.toString('latin1', pos, space);
    if (!/^[0-9]+$/.test(lenText)) throw new PaxRecordError('pax-malformed', `malformed PAX record length ${JSON.stringify(lenText)}`);
    const len = Number(lenText);
    const end = pos + len;
    if (len <= space - pos + 1 || end > body.length || body[end - 1] !== NEWLINE) {
      throw new PaxRecordError('pax-malformed', `PAX record at byte ${pos} has an inconsistent length ${len}`);
    }
    const eq = body.indexOf(EQUALS, space + 1);
    if (eq < 0 || eq >= end - 1 || eq === space + 1) throw new PaxRecordError('pax-malformed', `PAX record at byte ${pos} has no key`);
    const keyBytes = body.subarray(space + 1, eq);
    if (keyBytes.includes(NEWLINE) || keyBytes.includes(0)) {
      throw new PaxRecordError('newline-in-value', `PAX record at byte ${pos} has a newline or NUL in its keyword`, true);
    }
    const key = keyBytes.toString('utf8');
    const value = body.subarray(eq + 1, end - 1);
    if (!valueMayHoldNewline(key) && value.includes(NEWLINE)) {
      throw new PaxRecordError('newline-in-value', `PAX record ${JSON.stringify(key)} has a newline in its value`, true);
    }
    if (records.has(key)) throw new PaxRecordError('pax-duplicate-keyword', `PAX keyword ${JSON.stringify(key)} appears twice in one header`, true);
    if (records.size >= maxRecords) throw new PaxRecordError('pax-too-many-records', `PAX header has more than ${maxRecords} records`);
    // Copy: the body buffer is released (or reused) once the header is parsed.
    records.set(key, Buffer.from(value));
    pos = end;
  }
  return records;
}

/**
 * Applies `update` onto `base` (global headers accumulate; a record with an empty value removes the
 * keyword, per the pax spec: "the header field value shall be used").
 */
export function mergePaxRecords(base: PaxRecords, update: PaxRecords): PaxRecords {
  const merged = base.size === 0 ? new Map<string, Buffer>() : new Map(base);
  for (const [k, v] of update) {
    if (v.length === 0) merged.delete(k);
    else merged.set(k, v);
  }
  return merged;
}

/** Bytes a set of records holds (keys and values), for the bound on accumulated global headers. */
export function paxRecordsSize(records: PaxRecords): number {
  let n = 0;
  for (const [k, v] of records) n += k.length + v.length;
  return n;
}
