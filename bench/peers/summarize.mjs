#!/usr/bin/env node
// summarize.mjs RESULTS.csv — the table run.sh prints at its end: per step, the median over the
// repetitions of each peer's wall time (first-output time with --run) and its ratio to the
// reference of the same run (the floor if it ran, else hostpull); the disk after the last step;
// the peak RSS (largest of its steps, median over repetitions) and CPU time per step of hostpull's
// process, and of the daemon for hostpull-daemon.
import { readFileSync } from 'node:fs';

const file = process.argv[2];
if (!file) {
  console.error('usage: summarize.mjs RESULTS.csv');
  process.exit(2);
}
const [header, ...lines] = readFileSync(file, 'utf8').trim().split('\n');
const cols = header.split(',');
const timeCol = cols[4]; // wall_s, or first_output_s with --run
const rows = lines.filter(Boolean).map((line) => {
  const f = line.split(',');
  return Object.fromEntries(cols.map((c, i) => [c, i === cols.length - 1 ? f.slice(i).join(',') : f[i]]));
});
if (rows.length === 0) {
  console.log('no results');
  process.exit(0);
}

const median = (xs) => {
  const s = xs.filter((x) => Number.isFinite(x)).sort((a, b) => a - b);
  if (s.length === 0) return NaN;
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
};
const peers = [...new Set(rows.map((r) => r.peer))];
const steps = [...new Set(rows.map((r) => Number(r.step)))].sort((a, b) => a - b);
const lastStep = steps[steps.length - 1];
const reps = new Set(rows.map((r) => r.rep)).size;
const ref = peers.includes('floor') && timeCol === 'wall_s' ? 'floor' : 'hostpull';
const of = (peer, step, col) => median(rows.filter((r) => r.peer === peer && Number(r.step) === step).map((r) => Number(r[col])));
const tagOf = (step) => rows.find((r) => Number(r.step) === step).tag;
const ratio = (x, base) => (Number.isFinite(x) && Number.isFinite(base) && base > 0 ? `${(x / base).toFixed(2)}x` : '-');
const pad = (s, n) => String(s).padEnd(n);
const W = 20;

console.log(`Medians of ${reps} repetition(s); ${timeCol === 'wall_s' ? 'wall time' : 'time to first output'}, ratio to ${ref === 'floor' ? 'the floor (curl | pigz -dc | tar -x, parallel)' : 'hostpull'} of the same run`);
console.log(pad('step', 6) + pad('tag', 24) + peers.map((p) => pad(p, W)).join(''));
for (const step of steps) {
  const base = of(ref, step, timeCol);
  const cells = peers.map((p) => {
    const t = of(p, step, timeCol);
    return pad(p === ref ? `${t.toFixed(2)} s` : `${t.toFixed(2)} s (${ratio(t, base)})`, W);
  });
  console.log(pad(step, 6) + pad(tagOf(step), 24) + cells.join(''));
}
const refDisk = of(ref, lastStep, 'disk_bytes');
console.log(
  pad(`disk after step ${lastStep}`, 30) +
    peers.map((p) => pad(p === ref ? `${(of(p, lastStep, 'disk_bytes') / 1e6).toFixed(1)} MB` : `${(of(p, lastStep, 'disk_bytes') / 1e6).toFixed(1)} MB (${ratio(of(p, lastStep, 'disk_bytes'), refDisk)})`, W)).join(''),
);
// hostpull's own process; for hostpull-daemon the daemon's (RSS over its life, CPU per step).
for (const peer of ['hostpull', 'hostpull-daemon']) {
  const hp = rows.filter((r) => r.peer === peer && r.rss_kb);
  if (hp.length === 0) continue;
  const peakPerRep = [...new Set(hp.map((r) => r.rep))].map((rep) => Math.max(...hp.filter((r) => r.rep === rep).map((r) => Number(r.rss_kb))));
  const cpu = steps.map((s) => of(peer, s, 'cpu_s').toFixed(2)).join(' / ');
  console.log(`${peer}: peak RSS ${(median(peakPerRep) / 1024).toFixed(0)} MiB (largest step, median over repetitions); CPU user+sys per step ${cpu} s`);
}
