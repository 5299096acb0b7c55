/**
 * PAX extended header records (POSIX.1-2001 `pax` "extended header"): `"<len> <key>=<value>\n"`,
 * where `<len>` counts the whole record. Values stay raw bytes: `SCHILY.xattr.*` values are binary
 * (`security.capability` is a packed struct), which is why node-tar's string-based parser, which
 * also drops unknown keys, cannot serve a container layer.
 */
export type PaxRecords = Map<string, Buffer>;

const SPACE = 0x20;
const EQUALS = 0x3d;
const NEWLINE = 0x0a;

/** Parses a PAX body; throws a plain Error (the caller names the entry and the layer). */
export function parsePaxRecords(body: Buffer): PaxRecords {
  const records: PaxRecords = new Map();
  let pos = 0;
  // A trailing run of NULs is padding written by some producers; anything else must parse.
  while (pos < body.length && body[pos] !== 0) {
    const space = body.indexOf(SPACE, pos);
    if (space < 0 || space === pos || space - pos > 20) throw new Error(`malformed PAX record at byte ${pos}`);
    const lenText = body.toString('latin1', pos, space);
    if (!/^[0-9]+$/.test(lenText)) throw new Error(`malformed PAX record length ${JSON.stringify(lenText)}`);
    const len = Number(lenText);
    const end = pos + len;
    if (len <= space - pos + 1 || end > body.length || body[end - 1] !== NEWLINE) {
      throw new Error(`PAX record at byte ${pos} has an inconsistent length ${len}`);
    }
    const eq = body.indexOf(EQUALS, space + 1);
    if (eq < 0 || eq >= end - 1 || eq === space + 1) throw new Error(`PAX record at byte ${pos} has no key`);
    const key = body.toString('utf8', space + 1, eq);
    // Copy: the body buffer is reused by the reader for the next header.
    records.set(key, Buffer.from(body.subarray(eq + 1, end - 1)));
    pos = end;
  }
  return records;
}

/**
 * Applies `update` onto `base` (global headers accumulate; a record with an empty value removes the
 * keyword, per the pax spec: "the header field value shall be used").
 */
export function mergePaxRecords(base: PaxRecords, update: PaxRecords): PaxRecords {
  const merged = new Map(base);
  for (const [k, v] of update) {
    if (v.length === 0) merged.delete(k);
    else merged.set(k, v);
  }
  return merged;
}
