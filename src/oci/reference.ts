import { HostpullError } from '../errors.js';
import { parseDigest, type Digest } from './digest.js';

/**
 * An image reference `registry/repository[:tag][@digest]` (distribution/reference grammar).
 * `registry` is `host[:port]` as written; whether it is spoken over http or https is decided by
 * the registry client, not here.
 */
export interface ImageReference {
  registry: string;
  repository: string;
  tag?: string;
  digest?: Digest;
}

const DEFAULT_REGISTRY = 'docker.io';
/** OCI distribution-spec: a tag is at most 128 characters. */
export const MAX_TAG_LENGTH = 128;

const COMPONENT = '[a-z0-9]+(?:(?:[._]|__|[-]+)[a-z0-9]+)*';
const REPOSITORY_RE = new RegExp(`^${COMPONENT}(?:/${COMPONENT})*$`);
const TAG_RE = /^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$/;
const DOMAIN_RE =
  /^(?:localhost|\[[0-9a-fA-F:.]+\]|(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])(?:\.(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9]))*)(?::[0-9]+)?$/;

export function isValidRepository(name: string): boolean {
  return name.length <= 255 && REPOSITORY_RE.test(name);
}

/** Throws TAG_INVALID with a message that says which rule the tag breaks. */
export function validateTag(tag: string): string {
  if (tag.length > MAX_TAG_LENGTH) {
    throw new HostpullError('TAG_INVALID', `tag is ${tag.length} characters long; OCI allows at most ${MAX_TAG_LENGTH}`, {
      hint: 'combine fewer packages in one composite tag',
    });
  }
  if (!TAG_RE.test(tag)) {
    throw new HostpullError('TAG_INVALID', `tag ${JSON.stringify(tag)} has characters outside [A-Za-z0-9_.-] or starts with . or -`);
  }
  return tag;
}

function looksLikeDomain(component: string): boolean {
  return component === 'localhost' || component.includes('.') || component.includes(':') || /[A-Z]/.test(component);
}

/**
 * Parses a full reference. A first path component that looks like a host (has a `.` or `:`, or is
 * `localhost`) is the registry; otherwise the registry is `defaultRegistry` (docker.io, where
 * single-component names get the `library/` prefix as Docker does).
 */
export function parseReference(input: string, defaultRegistry: string = DEFAULT_REGISTRY): ImageReference {
  const bad = (why: string): never => {
    throw new HostpullError('REFERENCE_INVALID', `invalid image reference ${JSON.stringify(input)}: ${why}`, {
      hint: 'expected [host[:port]/]repository[:tag][@sha256:…]',
    });
  };
  if (input.length === 0) bad('empty');
  if (input.length > 4096) bad('longer than 4096 characters');
  let rest = input;
  let digest: Digest | undefined;
  const at = rest.indexOf('@');
  if (at >= 0) {
    try {
      digest = parseDigest(rest.slice(at + 1));
    } catch (err) {
      bad((err as Error).message);
    }
    rest = rest.slice(0, at);
  }
  let registry = defaultRegistry;
  const slash = rest.indexOf('/');
  if (slash >= 0 && looksLikeDomain(rest.slice(0, slash))) {
    registry = rest.slice(0, slash);
    rest = rest.slice(slash + 1);
    if (!DOMAIN_RE.test(registry)) bad(`registry ${JSON.stringify(registry)} is not a valid host[:port]`);
  }
  let tag: string | undefined;
  const colon = rest.lastIndexOf(':');
  if (colon >= 0 && !rest.slice(colon).includes('/')) {
    tag = rest.slice(colon + 1);
    rest = rest.slice(0, colon);
    try {
      validateTag(tag);
    } catch (err) {
      bad((err as Error).message);
    }
  }
  if (registry === DEFAULT_REGISTRY && !rest.includes('/')) rest = `library/${rest}`;
  if (!isValidRepository(rest)) bad(`repository ${JSON.stringify(rest)} must be lowercase [a-z0-9] components separated by . _ __ - or /`);
  const ref: ImageReference = { registry, repository: rest };
  if (tag !== undefined) ref.tag = tag;
  if (digest !== undefined) ref.digest = digest;
  return ref;
}

export interface ResolveOptions {
  /** The configured hostpull server (`host:port`), from --server, HOSTPULL_SERVER or the config file. */
  server?: string | undefined;
  /** Repository under which the server offers composites. */
  namespace: string;
}

/**
 * Resolves what a user typed. A bare composite tag such as `JDK11.0-MVN3.8-GRD7.0` (no `/`, no
 * `:`) names `<server>/<namespace>:<tag>`; `repo:tag` without a host is looked up on the server
 * too; anything with a host is taken as written.
 */
export function resolveReference(input: string, options: ResolveOptions): ImageReference {
  if (!input.includes('/')) {
    if (!options.server) {
      throw new HostpullError('NO_SERVER', `${JSON.stringify(input)} is a short reference but no hostpull server is configured`, {
        hint: 'pass --server HOST:PORT, set HOSTPULL_SERVER, or write a full reference host:port/repository:tag',
      });
    }
    if (!input.includes(':') && !input.includes('@')) {
      validateTag(input);
      return { registry: options.server, repository: options.namespace, tag: input };
    }
    // The server is the default registry rather than a prefix to re-parse: a server name without
    // a dot or port (`hostpull-serve`) would otherwise be read as a Docker Hub namespace.
    return parseReference(input, options.server);
  }
  const ref = parseReference(input, options.server ?? DEFAULT_REGISTRY);
  return ref;
}

/** The reference as text; with no tag and no digest, `:latest` is implied but not written. */
export function formatReference(ref: ImageReference): string {
  let s = `${ref.registry}/${ref.repository}`;
  if (ref.tag !== undefined) s += `:${ref.tag}`;
  if (ref.digest !== undefined) s += `@${ref.digest}`;
  return s;
}

/** The tag or digest to ask the registry's manifest endpoint for. */
export function manifestSelector(ref: ImageReference): string {
  return ref.digest ?? ref.tag ?? 'latest';
}
