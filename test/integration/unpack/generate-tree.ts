import { chmodSync, chownSync, linkSync, mkdirSync, symlinkSync, utimesSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

export interface TreeOptions {
  files: number;
  /** Mean file size in bytes (sizes vary 0 … 2× mean). */
  meanSize: number;
  seed?: number;
}

/**
 * A deterministic directory tree that looks like a package layer: nested dirs, files of varied
 * sizes and modes (some setuid/setgid), owners, symlinks (absolute and climbing), hardlinks and
 * fixed mtimes. Content is pseudo-random so gzip has real work to do.
 */
export function generateTree(root: string, options: TreeOptions): void {
  let state = options.seed ?? 42;
  const rand = (n: number): number => {
    // xorshift32: deterministic and cheap
    state ^= state << 13;
    state ^= state >>> 17;
    state ^= state << 5;
    return (state >>> 0) % n;
  };
  const dirs = [''];
  mkdirSync(root, { recursive: true });
  for (let i = 0; i < options.files / 12; i++) {
    const parent = dirs[rand(dirs.length)]!;
    const d = parent === '' ? `d${i}` : `${parent}/d${i}`;
    if (d.split('/').length > 8) continue;
    mkdirSync(join(root, d));
    dirs.push(d);
  }
  const files: string[] = [];
  const modes = [0o644, 0o644, 0o755, 0o600, 0o640, 0o444, 0o4755, 0o2755, 0o700];
  for (let i = 0; i < options.files; i++) {
    const d = dirs[rand(dirs.length)]!;
    const p = d === '' ? `f${i}` : `${d}/f${i}`;
    const kind = rand(40);
    const abs = join(root, p);
    if (kind === 0 && files.length > 0) {
      linkSync(join(root, files[rand(files.length)]!), abs);
      continue;
    }
    if (kind === 1) {
      symlinkSync(rand(2) === 0 ? `/usr/lib/target${i}` : `${'../'.repeat(1 + rand(10))}x${i}`, abs);
      continue;
    }
    const size = rand(options.meanSize * 2 + 1);
    const buf = Buffer.alloc(size, 0x61);
    // A quarter random words, the rest text-like: gzip has real work to do, as with binaries.
    for (let j = 0; j + 4 <= size; j += 4) buf.writeUInt32LE(rand(4) === 0 ? rand(0xffffffff) : 0x61616161 + rand(16), j);
    writeFileSync(abs, buf);
    chownSync(abs, rand(3) === 0 ? 1000 + rand(5) : 0, rand(3) === 0 ? 100 + rand(5) : 0);
    chmodSync(abs, modes[rand(modes.length)]!);
    utimesSync(abs, 1_600_000_000 + rand(1_000_000), 1_600_000_000 + rand(1_000_000));
    files.push(p);
  }
  for (const d of dirs.slice(1).reverse()) {
    chmodSync(join(root, d), rand(5) === 0 ? 0o750 : 0o755);
    utimesSync(join(root, d), 1_500_000_000 + rand(1000), 1_500_000_000 + rand(1000));
  }
}
