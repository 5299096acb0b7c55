import type { Logger } from '../log.js';
import { digestAlgorithm, digestOf, isDigest, shortDigest, type Digest, type ImageReference } from '../oci/index.js';
import { dumpBody, headerValue } from './body.js';
import { isRegistryError, RegistryError } from './errors.js';
import type { RetryPolicy } from './retry.js';
import type { RequestBody, Transport } from './transport.js';

export interface PushBlobOptions {
  /** A repository on the same registry that has the blob: try a cross-repository mount first. */
  mountFrom?: string;
  signal?: AbortSignal;
}

interface RepoLike {
  registry: string;
  repository: string;
}

export interface PushContext {
  transport: Transport;
  retry: RetryPolicy;
  logger: Logger;
  client: { blobExists(repo: RepoLike, digest: Digest, opts: { signal?: AbortSignal; scopes?: string[] }): Promise<number | null> };
}

function pushScopes(repository: string, mountFrom?: string): string[] {
  const scopes = [`repository:${repository}:pull,push`];
  if (mountFrom && mountFrom !== repository) scopes.push(`repository:${mountFrom}:pull`);
  return scopes;
}

/**
 * Blob push (distribution-spec "Pushing blobs"): skip when HEAD finds it, else POST an upload
 * (with `mount`/`from` for a cross-repository mount: 201 = mounted, 202 = upload instead), then a
 * monolithic PUT to the Location with `?digest=`. An upload session is single-use, so a temporary
 * failure retries the whole POST+PUT sequence (the body factory re-opens the stream).
 */
export async function pushBlob(
  ctx: PushContext,
  repo: RepoLike,
  digest: Digest,
  size: number,
  body: RequestBody,
  opts: PushBlobOptions,
): Promise<void> {
  const scopes = pushScopes(repo.repository, opts.mountFrom);
  const signal = opts.signal ? { signal: opts.signal } : {};
  // HEAD with the push scopes, so the token fetched here is the one the upload reuses.
  if ((await ctx.client.blobExists(repo, digest, { ...signal, scopes })) !== null) return;
  const retry = ctx.retry.begin(repo.registry, { signal: opts.signal });
  for (;;) {
    try {
      await uploadOnce(ctx, repo, digest, size, body, scopes, opts);
      return;
    } catch (err) {
      // Only the registry's "not now" (a temporary status or a broken connection) is retried here.
      if (!isRegistryError(err)) throw err;
      await retry.failed(err);
      ctx.logger.debug({ repository: repo.repository, digest, retries: retry.retries, code: err.code }, 'blob upload failed; retrying');
    }
  }
}

async function uploadOnce(
  ctx: PushContext,
  repo: RepoLike,
  digest: Digest,
  size: number,
  body: RequestBody,
  scopes: string[],
  opts: PushBlobOptions,
): Promise<void> {
  const { transport } = ctx;
  const signal = opts.signal ? { signal: opts.signal } : {};
  const mount = opts.mountFrom && opts.mountFrom !== repo.repository ? opts.mountFrom : undefined;
  const query = mount ? `?${new URLSearchParams({ mount: digest, from: mount })}` : '';
  const post = await transport.request({
    registry: repo.registry,
    method: 'POST',
    url: `/v2/${repo.repository}/blobs/uploads/${query}`,
    headers: { 'content-length': '0' },
    scopes,
    retry: false,
    followRedirects: false,
    ...signal,
  });
  if (mount && post.status === 201) {
    await dumpBody(post.body);
    ctx.logger.debug({ repository: repo.repository, from: mount, digest }, 'blob mounted');
    return;
  }
  if (post.status !== 202) throw await transport.fail(post, 'POST', { registry: repo.registry, notFoundCode: 'NAME_UNKNOWN' });
  const location = headerValue(post.headers, 'location');
  await dumpBody(post.body);
  if (!location) {
    throw new RegistryError('BLOB_UPLOAD_INVALID', `POST ${repo.registry}/v2/${repo.repository}/blobs/uploads/: 202 without a Location header`, { status: 202 });
  }
  // Location may be relative or absolute and carries the session state in its query (distribution
  // puts `_state=…` there): keep that query and add `digest`.
  const putUrl = new URL(location, post.url);
  putUrl.searchParams.set('digest', digest);
  const put = await transport.request({
    registry: repo.registry,
    method: 'PUT',
    url: putUrl.toString(),
    headers: { 'content-type': 'application/octet-stream', 'content-length': String(size) },
    body,
    scopes,
    retry: false,
    followRedirects: false,
    ...signal,
  });
  if (put.status !== 201 && put.status !== 204) throw await transport.fail(put, 'PUT', { registry: repo.registry, notFoundCode: 'BLOB_UNKNOWN' });
  const returned = headerValue(put.headers, 'docker-content-digest');
  await dumpBody(put.body);
  if (returned && isDigest(returned) && returned !== digest) {
    throw new RegistryError('DIGEST_MISMATCH', `PUT blob ${shortDigest(digest)} to ${repo.registry}/${repo.repository}: registry stored ${shortDigest(returned)}`, {
      details: { expected: digest, actual: returned },
    });
  }
}

/** Manifest push: `PUT /v2/<name>/manifests/<tag|digest>`; the digest is computed here. */
export async function putManifest(
  ctx: PushContext,
  ref: ImageReference,
  bytes: Buffer,
  mediaType: string,
  opts: { signal?: AbortSignal },
): Promise<Digest> {
  const digest = digestOf(bytes, ref.digest ? digestAlgorithm(ref.digest) : 'sha256');
  const where = `manifest ${ref.registry}/${ref.repository}`;
  if (ref.digest && ref.digest !== digest) {
    throw new RegistryError('DIGEST_MISMATCH', `${where}: bytes are ${shortDigest(digest)}, reference says ${shortDigest(ref.digest)}`, {
      details: { expected: ref.digest, actual: digest },
    });
  }
  const selector = ref.tag ?? digest;
  const res = await ctx.transport.request({
    registry: ref.registry,
    method: 'PUT',
    url: `/v2/${ref.repository}/manifests/${selector}`,
    headers: { 'content-type': mediaType, 'content-length': String(bytes.length) },
    body: bytes,
    scopes: [`repository:${ref.repository}:pull,push`],
    // Putting the same bytes under the same name twice has the same effect: safe to retry.
    retry: true,
    followRedirects: false,
    ...(opts.signal ? { signal: opts.signal } : {}),
  });
  if (res.status !== 201 && res.status !== 200) throw await ctx.transport.fail(res, 'PUT', { registry: ref.registry, notFoundCode: 'NAME_UNKNOWN' });
  const returned = headerValue(res.headers, 'docker-content-digest');
  await dumpBody(res.body);
  if (returned && isDigest(returned) && digestAlgorithm(returned) === digestAlgorithm(digest) && returned !== digest) {
    throw new RegistryError('DIGEST_MISMATCH', `${where}: registry stored ${shortDigest(returned)}, we sent ${shortDigest(digest)}`, {
      details: { expected: digest, actual: returned },
    });
  }
  return digest;
}
