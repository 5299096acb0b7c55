import { HostpullError } from '../errors.js';
import { MAX_TAG_LENGTH } from '../oci/index.js';
import { CODE_NAME_RE } from './catalog-entry.js';

/**
 * Splits a composite tag (`JDK11.0-MVN3.8-GRD7.0`) into its code names, validated and sorted.
 * Sorting makes the set canonical: GRD7.0-JDK11.0 and JDK11.0-GRD7.0 name the same image.
 * Throws TAG_INVALID naming the offending part.
 */
export function parseCompositeTag(tag: string): string[] {
  if (tag.length > MAX_TAG_LENGTH) {
    throw new HostpullError('TAG_INVALID', `tag is ${tag.length} characters long; OCI allows at most ${MAX_TAG_LENGTH}`, {
      hint: 'combine fewer packages in one composite tag',
      details: { length: tag.length, limit: MAX_TAG_LENGTH },
    });
  }
  if (tag.length === 0) throw new HostpullError('TAG_INVALID', 'empty tag');
  const parts = tag.split('-');
  const seen = new Set<string>();
  parts.forEach((part, i) => {
    if (part.length === 0) {
      throw new HostpullError('TAG_INVALID', `tag ${JSON.stringify(tag)} has an empty code name at position ${i + 1} (leading, trailing or doubled '-')`, {
        details: { position: i + 1 },
      });
    }
    if (!CODE_NAME_RE.test(part)) {
      throw new HostpullError('TAG_INVALID', `code name ${JSON.stringify(part)} in tag ${JSON.stringify(tag)} has characters outside [A-Za-z0-9._]`, {
        details: { codeName: part },
      });
    }
    if (seen.has(part)) {
      throw new HostpullError('TAG_INVALID', `code name ${part} appears twice in tag ${JSON.stringify(tag)}`, { details: { codeName: part } });
    }
    seen.add(part);
  });
  // OCI tags may not start with '.'; a code name may (it is only a part), but not the whole tag.
  if (tag.startsWith('.')) throw new HostpullError('TAG_INVALID', `tag ${JSON.stringify(tag)} starts with '.', which OCI tags may not`);
  return [...seen].sort();
}

/** The tag of a set of code names: sorted, so every order of one set names one composite (DESIGN §1). */
export function canonicalTag(codes: readonly string[]): string {
  return [...codes].sort().join('-');
}
