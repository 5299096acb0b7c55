/**
 * Labels containerd puts on the snapshots it prepares (containerd 1.6: the unpacker and the CRI
 * plugin's image handler). Facts of containerd's protocol, gathered here so that no other file
 * spells them.
 */

/**
 * The committed snapshot containerd wants (a chainID, `sha256:…`). With it, a snapshotter that
 * makes the layer present itself commits a snapshot of that name and answers ALREADY_EXISTS;
 * containerd then skips downloading and applying the layer. Without it, ALREADY_EXISTS is an error.
 */
export const TARGET_REF_LABEL = 'containerd.io/snapshot.ref';

/** The image being pulled, as the kubelet named it (CRI, with `disable_snapshot_annotations = false`). */
export const CRI_IMAGE_REF_LABEL = 'containerd.io/snapshot/cri.image-ref';
/** The compressed digest of the layer being prepared (CRI). */
export const CRI_LAYER_DIGEST_LABEL = 'containerd.io/snapshot/cri.layer-digest';
/** The digest of the image manifest the layer belongs to (CRI). */
export const CRI_MANIFEST_DIGEST_LABEL = 'containerd.io/snapshot/cri.manifest-digest';

/** Labels containerd's metadata store keeps for itself; a snapshotter stores what it gets. */
export type Labels = Record<string, string>;
