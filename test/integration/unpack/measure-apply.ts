/**
 * One-off measurement (not a test): applyLayer vs GNU `tar -xzpf` on a generated ~100 MB,
 * 4,000-file gzip layer. Run as root: `npx vite-node test/integration/unpack/measure-apply.ts`.
 */
import { execFileSync } from 'node:child_process';
import { createReadStream, mkdirSync, mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { applyLayer } from '../../../src/unpack/index.js';
import { generateTree } from './generate-tree.js';

const dir = mkdtempSync(join(tmpdir(), 'hp-unpack-measure-'));
try {
  generateTree(join(dir, 'src'), { files: 4000, meanSize: 25_000, seed: 7 });
  execFileSync('tar', ['--numeric-owner', '-C', join(dir, 'src'), '-czf', join(dir, 'layer.tgz'), '.']);
  const compressed = statSync(join(dir, 'layer.tgz')).size;
  const runs = Number(process.env.RUNS ?? 3);
  for (let i = 0; i < runs; i++) {
    const gnu = join(dir, `gnu${i}`);
    const ours = join(dir, `ours${i}`);
    mkdirSync(gnu);
    mkdirSync(ours);
    execFileSync('sync');
    let t = process.hrtime.bigint();
    // bash's `times` reports the CPU of tar and its gzip child (machine load skews wall time).
    const gnuCpu = execFileSync('bash', ['-c', `tar --same-owner --numeric-owner -xzpf "$0" -C "$1"; times`, join(dir, 'layer.tgz'), gnu]).toString().trim().split('\n').pop();
    const gnuMs = Number(process.hrtime.bigint() - t) / 1e6;
    const cpu0 = process.cpuUsage();
    execFileSync('sync');
    t = process.hrtime.bigint();
    const r = await applyLayer(createReadStream(join(dir, 'layer.tgz'), { highWaterMark: 1 << 20 }), { compression: 'gzip', target: ours });
    const oursMs = Number(process.hrtime.bigint() - t) / 1e6;
    const cpu = process.cpuUsage(cpu0);
    const mb = r.uncompressedSize / 1e6;
    console.log(
      `run ${i}: ${r.entries} entries, ${r.files} files, ${mb.toFixed(1)} MB tar (${(compressed / 1e6).toFixed(1)} MB gz): ` +
        `GNU tar ${gnuMs.toFixed(0)} ms (${(mb / (gnuMs / 1000)).toFixed(0)} MB/s), ` +
        `applyLayer ${oursMs.toFixed(0)} ms (${(mb / (oursMs / 1000)).toFixed(0)} MB/s, ${(r.files / (oursMs / 1000)).toFixed(0)} files/s); ` +
        `CPU user/sys: GNU tar+gzip children ${gnuCpu}, applyLayer ${(cpu.user / 1e3).toFixed(0)}/${(cpu.system / 1e3).toFixed(0)} ms (zlib pool threads included)`,
    );
    rmSync(gnu, { recursive: true });
    rmSync(ours, { recursive: true });
  }
} finally {
  rmSync(dir, { recursive: true, force: true });
}
