/**
 * A CRI layer fetch that the daemon's stop cuts short: answered DAEMON_STOPPING (gRPC UNAVAILABLE),
 * not "not handled", which would make containerd fetch and apply the layer itself and then Commit
 * it to a snapshotter that is gone.
 */
import { status } from '@grpc/grpc-js';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { errorRow, isHostpullError } from '../../../src/errors.js';
import { silentLogger } from '../../../src/log.js';
import { digestOf } from '../../../src/oci/digest.js';
import type { RegistryClient } from '../../../src/registry/index.js';
import { CRI_IMAGE_REF_LABEL, CRI_LAYER_DIGEST_LABEL, CRI_MANIFEST_DIGEST_LABEL } from '../../../src/snapshotter/labels.js';
import { RemoteLayers } from '../../../src/snapshotter/remote-layers.js';
import { ContentStore } from '../../../src/store/content-store.js';
import { useTempDir } from '../../helpers/tmp.js';

/** A registry client whose manifest GET waits until its signal fires, then fails as undici does. */
function stalledClient(): RegistryClient {
  return {
    getManifest: (_ref: unknown, opts: { signal?: AbortSignal }) =>
      new Promise((_resolve, reject) => opts.signal?.addEventListener('abort', () => reject(new DOMException('This operation was aborted', 'AbortError')), { once: true })),
  } as unknown as RegistryClient;
}

const labels = {
  [CRI_IMAGE_REF_LABEL]: '127.0.0.1:1/hostpull:AA1.0',
  [CRI_MANIFEST_DIGEST_LABEL]: digestOf('manifest'),
  [CRI_LAYER_DIGEST_LABEL]: digestOf('layer'),
};

describe('RemoteLayers when the daemon stops', () => {
  const tmp = useTempDir('remote-layers-stop');
  let store: ContentStore;
  beforeEach(async () => {
    store = await ContentStore.open(await tmp());
  });
  afterEach(() => store.close());

  it('answers a fetch cut short by the stop with DAEMON_STOPPING, which containerd gets as UNAVAILABLE', async () => {
    const stop = new AbortController();
    const remote = new RemoteLayers({ store, client: stalledClient(), logger: silentLogger() }, { signal: stop.signal });
    const asked = remote.ensure({ target: digestOf('chain'), parentChain: undefined, labels });
    stop.abort(new Error('daemon stopping'));
    const err = await asked.then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(isHostpullError(err, 'DAEMON_STOPPING'), String(err)).toBe(true);
    expect(status[errorRow('DAEMON_STOPPING').grpc!]).toBe(status.UNAVAILABLE);
  });

  it('still leaves a layer it cannot fetch to containerd while the daemon runs', async () => {
    const failing = { getManifest: () => Promise.reject(new Error('connection refused')) } as unknown as RegistryClient;
    const remote = new RemoteLayers({ store, client: failing, logger: silentLogger() }, { signal: new AbortController().signal });
    const r = await remote.ensure({ target: digestOf('chain'), parentChain: undefined, labels });
    expect(r).toMatchObject({ handled: false, reason: expect.stringContaining('connection refused') });
  });
});
