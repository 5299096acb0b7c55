import { lstatSync, readdirSync, type Stats } from 'node:fs';
import { CAPABILITY_XATTR, FootprintBuilder, isNeutralDir, SETID_BITS, type LayerFootprint } from '../archive/index.js';
import { llistxattr } from '../native/index.js';

/**
 * The footprint (archive/layer-footprint.ts) of a layer tree containerd applied, read from the
 * tree itself in overlay format: a 0:0 character device is a whiteout, a directory with an
 * overlay opaque xattr an opaque marker. It lets a layer adopted from containerd be held to a
 * package claim from the store's record, like one hostpull unpacked from its archive.
 */
export function treeFootprint(root: string): LayerFootprint {
  const fp = new FootprintBuilder();
  const visit = (rel: string, st: Stats) => {
    const xattrs = llistxattr(rel === '' ? root : `${root}/${rel}`);
    if (st.isDirectory()) {
      if (isNeutralDir('dir', st.mode, st.uid, st.gid, xattrs.length)) fp.neutralDir(rel);
      else fp.claiming(rel);
    } else if (st.isCharacterDevice() && st.rdev === 0) {
      fp.claiming(rel); // a whiteout: hides what lower layers have at rel
    } else if (st.isCharacterDevice() || st.isBlockDevice() || st.isFIFO()) {
      fp.device(rel);
    } else {
      fp.claiming(rel);
      if (st.isFile() && (st.mode & SETID_BITS) !== 0) fp.setid(rel);
    }
    if (!st.isSymbolicLink() && xattrs.includes(CAPABILITY_XATTR)) fp.capability(rel);
  };
  visit('', lstatSync(root));
  const stack = [''];
  while (stack.length > 0) {
    const dir = stack.pop()!;
    for (const name of readdirSync(dir === '' ? root : `${root}/${dir}`)) {
      const rel = dir === '' ? name : `${dir}/${name}`;
      const st = lstatSync(`${root}/${rel}`);
      visit(rel, st);
      if (st.isDirectory()) stack.push(rel);
    }
  }
  return fp.build();
}
