import { digestOf } from '../../src/oci/digest.js';
import type { LayerCommit } from '../../src/store/layers.js';

/** A layer record for store tests: a package `name` owning opt/<name>, with made-up digests. */
export function commitOf(name: string): LayerCommit {
  return {
    diffId: digestOf(`diff ${name}`),
    blobDigest: digestOf(`blob ${name}`),
    unpackedSize: 5,
    entries: 1,
    ownedPaths: [`opt/${name}/file`, `opt/${name}/bin/x`],
    footprint: { claimRoot: `opt/${name}`, neutralDirs: ['opt'], neutralOverflow: false, devices: 0, setid: [`opt/${name}/bin/x`], setidCount: 1, capabilities: [], capabilityCount: 0 },
    treeChecksum: `tree1:${name}`,
  };
}
