#!/usr/bin/env node
// Sums up the JSON lines that the fault and kill trials append to $HOSTPULL_TRIAL_LOG
// (test/helpers/trials.ts): per kind, how many trials, how many recovered, bytes fetched twice.
//   HOSTPULL_TRIAL_LOG=/tmp/trials.jsonl npx vitest run test/integration/pull test/integration/daemon
//   node bench/summarize-trials.mjs /tmp/trials.jsonl
import { readFileSync } from 'node:fs';

const path = process.argv[2] ?? process.env.HOSTPULL_TRIAL_LOG;
if (!path) {
  process.stderr.write('usage: summarize-trials.mjs FILE (or set HOSTPULL_TRIAL_LOG)\n');
  process.exit(2);
}
const byKind = new Map();
for (const line of readFileSync(path, 'utf8').split('\n')) {
  if (!line.trim()) continue;
  const t = JSON.parse(line);
  const k = byKind.get(t.kind) ?? { trials: 0, recovered: 0, bytesFetchedTwice: 0, stranded: 0 };
  k.trials++;
  if (t.recovered) k.recovered++;
  k.bytesFetchedTwice += t.bytesFetchedTwice ?? 0;
  k.stranded += t.stranded ?? 0;
  byKind.set(t.kind, k);
}
process.stdout.write('| kind | trials | recovered | bytes fetched twice | stranded rootfs |\n|---|---|---|---|---|\n');
for (const [kind, k] of [...byKind].sort()) {
  process.stdout.write(`| ${kind} | ${k.trials} | ${k.recovered} | ${k.bytesFetchedTwice} | ${k.stranded} |\n`);
}
