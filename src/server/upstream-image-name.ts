import { HostpullError, type ErrorCode } from '../errors.js';
import { parseReference } from '../oci/index.js';
import type { Upstream } from './upstream.js';

/**
 * How an image in the upstream is named wherever a flag or a catalog entry names one: the
 * repository as it is in the upstream, with a tag or a digest (`pkg/base:latest`,
 * `pkg/jdk@sha256:…`). The catalog's schema holds the same rule.
 */
export const UPSTREAM_IMAGE_RE = /^[a-z0-9][a-z0-9._/-]*(?::[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}|@sha256:[a-f0-9]{64})$/;
const UPSTREAM_IMAGE_FORM = 'repository:tag or repository@sha256:… as it is in the upstream, e.g. pkg/base:latest';

/** Parsed with no default registry: a name without a host keeps this as its registry. */
const NO_HOST = '';

/**
 * `input` as the upstream names it. A full reference whose registry is the upstream itself
 * (`127.0.0.1:5000/pkg/base:latest` for an upstream at http://127.0.0.1:5000) loses its host, the
 * one way a user may naturally write it; a reference to any other registry, or to a host when the
 * upstream is an OCI layout, is refused (`code`, naming `what`), since the server reads images
 * from its upstream alone. Anything else is returned as given, for the caller's own check of the
 * form.
 */
export function withoutUpstreamHost(input: string, upstream: Pick<Upstream, 'registry' | 'location'>, what: string, code: ErrorCode): string {
  let registry: string;
  try {
    registry = parseReference(input, NO_HOST).registry;
  } catch {
    return input;
  }
  if (registry === NO_HOST) return input;
  if (upstream.registry !== undefined && registry.toLowerCase() === upstream.registry.toLowerCase()) return input.slice(registry.length + 1);
  const where = upstream.registry === undefined ? `the OCI layout ${upstream.location}, which has no host` : `${upstream.registry}`;
  throw new HostpullError(code, `${what} ${JSON.stringify(input)} names registry ${registry}, but the server reads images from its upstream, ${where}`, {
    hint: `name the image ${UPSTREAM_IMAGE_FORM}${upstream.registry === undefined ? '' : ` (or with the upstream's own host, ${upstream.registry}/pkg/base:latest)`}`,
    details: { image: input, registry, upstream: upstream.location },
  });
}

/** `input` as an image of the upstream (see {@link withoutUpstreamHost}), its form checked. */
export function upstreamImageName(input: string, upstream: Pick<Upstream, 'registry' | 'location'>, what: string, code: ErrorCode): string {
  const name = withoutUpstreamHost(input.trim(), upstream, what, code);
  if (!UPSTREAM_IMAGE_RE.test(name)) throw new HostpullError(code, `${what} ${JSON.stringify(input)} is not an image name: expected ${UPSTREAM_IMAGE_FORM}`);
  return name;
}
