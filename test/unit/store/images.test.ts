import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { digestOf } from '../../../src/oci/digest.js';
import { ContentStore } from '../../../src/store/content-store.js';
import type { ImageRow, ManifestLayerRow } from '../../../src/store/images.js';
import { useTempDir } from '../../helpers/tmp.js';

function image(reference: string, manifest: string): ImageRow {
  return {
    reference,
    registry: '127.0.0.1:5000',
    repository: 'hostpull',
    tag: reference.split(':').pop()!,
    manifestDigest: digestOf(manifest),
    indexDigest: null,
    configDigest: digestOf(`config ${manifest}`),
    resolvedAt: 1,
  };
}

function layers(...names: string[]): ManifestLayerRow[] {
  return names.map((n, position) => ({ position, blobDigest: digestOf(`blob ${n}`), diffId: digestOf(`diff ${n}`), mediaType: 'application/vnd.oci.image.layer.v1.tar+gzip', size: 5 }));
}

describe('ImageIndex.removeNamed', () => {
  const tmp = useTempDir('store-images');
  let store: ContentStore;
  beforeEach(async () => {
    store = await ContentStore.open(await tmp());
    store.images.put(image('127.0.0.1:5000/hostpull:JDK17.0-MVN3.8', 'jdk+mvn'), layers('jdk', 'mvn'));
    store.images.put(image('127.0.0.1:5000/hostpull:JDK17.0', 'jdk'), layers('jdk'));
    // Two names for one manifest: removing one keeps the manifest's layer list for the other.
    store.images.put(image('127.0.0.1:5000/hostpull:latest', 'jdk'), layers('jdk'));
  });
  afterEach(() => store.close());

  it('removes the named images and the layer lists no remaining image resolves to', () => {
    const removed = store.images.removeNamed(['127.0.0.1:5000/hostpull:JDK17.0-MVN3.8', '127.0.0.1:5000/hostpull:JDK17.0']);
    expect(removed.map((r) => r.reference)).toEqual(['127.0.0.1:5000/hostpull:JDK17.0-MVN3.8', '127.0.0.1:5000/hostpull:JDK17.0']);
    expect(store.images.list().map((r) => r.reference)).toEqual(['127.0.0.1:5000/hostpull:latest']);
    expect(store.images.layers(digestOf('jdk+mvn'))).toEqual([]);
    expect(store.images.layers(digestOf('jdk'))).toHaveLength(1);
    // What GC sweeps from: only the layers a remaining image lists.
    expect([...store.images.listedLayers().keys()]).toEqual([digestOf('diff jdk')]);
  });

  it('removes none when one name is not stored, and names every missing one', () => {
    expect(() => store.images.removeNamed(['127.0.0.1:5000/hostpull:JDK17.0', '127.0.0.1:5000/hostpull:GO1.19', '127.0.0.1:5000/hostpull:X'])).toThrow(
      expect.objectContaining({ code: 'IMAGE_UNKNOWN', message: expect.stringMatching(/GO1\.19, 127\.0\.0\.1:5000\/hostpull:X; nothing was removed/) }),
    );
    expect(store.images.list()).toHaveLength(3);
    expect(store.images.layers(digestOf('jdk+mvn'))).toHaveLength(2);
  });
});
