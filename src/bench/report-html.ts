import { formatBytes } from '../util/index.js';
import type { ApproachName, ApproachResult, BenchResult } from './run.js';

interface Line {
  label: string;
  color: string;
  dashed?: boolean;
  values: number[];
}

const COLORS: Record<ApproachName, string> = { hostpull: '#1b7f3b', flattened: '#b23a48', stacked: '#2f5fa7' };
const LABELS: Record<ApproachName, string> = { hostpull: 'hostpull', flattened: 'flattened image per combination', stacked: 'Dockerfile-style stacked' };

function esc(s: string): string {
  return s.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}

function pct(x: number): string {
  return `${(x * 100).toFixed(1)}%`;
}

/** A line chart as inline SVG: x = request number, y from 0 to yMax, a legend under the plot. */
export function lineChartSvg(title: string, lines: Line[], yMax: number, yFormat: (v: number) => string): string {
  const W = 720;
  const H = 300;
  const L = 80;
  const R = 20;
  const T = 30;
  const B = 40;
  const n = Math.max(1, ...lines.map((l) => l.values.length));
  const x = (i: number) => L + (n === 1 ? 0 : (i / (n - 1)) * (W - L - R));
  const top = yMax > 0 ? yMax : 1;
  const y = (v: number) => T + (1 - v / top) * (H - T - B);
  const parts: string[] = [];
  parts.push(`<text x="${L}" y="18" font-size="14" font-weight="bold">${esc(title)}</text>`);
  for (let k = 0; k <= 4; k++) {
    const v = (top * k) / 4;
    parts.push(`<line x1="${L}" x2="${W - R}" y1="${y(v).toFixed(1)}" y2="${y(v).toFixed(1)}" stroke="#ddd"/>`);
    parts.push(`<text x="${L - 6}" y="${(y(v) + 4).toFixed(1)}" font-size="11" text-anchor="end">${esc(yFormat(v))}</text>`);
  }
  parts.push(`<text x="${(L + W - R) / 2}" y="${H - 8}" font-size="11" text-anchor="middle">request 1…${n}</text>`);
  for (const l of lines) {
    const pts = l.values.map((v, i) => `${x(i).toFixed(1)},${y(v).toFixed(1)}`).join(' ');
    parts.push(`<polyline fill="none" stroke="${l.color}" stroke-width="2"${l.dashed ? ' stroke-dasharray="6 4"' : ''} points="${pts}"/>`);
  }
  const legend = lines
    .map((l, i) => `<g transform="translate(${L + (i % 2) * 320},${H + 14 + Math.floor(i / 2) * 16})"><line x1="0" x2="24" y1="-4" y2="-4" stroke="${l.color}" stroke-width="2"${l.dashed ? ' stroke-dasharray="6 4"' : ''}/><text x="30" y="0" font-size="12">${esc(l.label)}</text></g>`)
    .join('');
  const rows = Math.ceil(lines.length / 2);
  return `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H + 10 + rows * 16}" viewBox="0 0 ${W} ${H + 10 + rows * 16}" font-family="sans-serif">${parts.join('')}${legend}</svg>`;
}

function approaches(r: BenchResult): ApproachResult[] {
  return (['hostpull', 'flattened', 'stacked'] as const).map((n) => r.approaches[n]).filter((a): a is ApproachResult => a !== undefined);
}

/** A self-contained HTML page (inline CSS and SVG, no external assets) for one bench run. */
export function renderHtmlReport(r: BenchResult): string {
  const all = approaches(r);
  const hitLines: Line[] = [];
  for (const a of all) {
    hitLines.push({ label: `${LABELS[a.name]} — byte hit rate`, color: COLORS[a.name], values: a.series.map((p) => p.byteHitRate) });
    hitLines.push({ label: `${LABELS[a.name]} — layer hit rate`, color: COLORS[a.name], dashed: true, values: a.series.map((p) => p.layerHitRate) });
  }
  const byteLines: Line[] = all.map((a) => ({ label: LABELS[a.name], color: COLORS[a.name], values: a.series.map((p) => p.bytesFetched) }));
  const yBytes = Math.max(1, ...byteLines.flatMap((l) => l.values));
  const hp = r.approaches.hostpull;
  const rows = all
    .map(
      (a) =>
        `<tr><td>${esc(LABELS[a.name])}</td><td>${pct(a.layerHitRate)}</td><td>${pct(a.byteHitRate)}</td><td>${formatBytes(a.bytesFetched)}</td><td>${(a.bytesFetched / Math.max(1, hp.bytesFetched)).toFixed(2)}×</td><td>${formatBytes(a.registryBytes)}</td><td>${formatBytes(a.storeBytes)}</td><td>${a.cold.medianMs} ms (${a.cold.pulls})</td><td>${a.warm.medianMs} ms (${a.warm.pulls})</td><td>${a.byteMismatches}</td></tr>`,
    )
    .join('\n');
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>hostpull bench, seed ${r.seed}</title>
<style>body{font-family:sans-serif;max-width:60rem;margin:2rem auto;color:#222}table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:.25rem .5rem;text-align:right}td:first-child,th:first-child{text-align:left}</style>
</head><body>
<h1>hostpull bench</h1>
<p>${r.source === 'trace' ? 'Trace replay' : 'Synthetic workload'}: ${r.workload.requests} requests, ${r.workload.distinctTags} distinct combinations, ${r.catalog.packages} packages / ${r.catalog.versions} versions (${formatBytes(r.catalog.packageBytes)} payload, base ${formatBytes(r.catalog.baseBytes)}), seed ${r.seed}, ${r.nodes} node${r.nodes > 1 ? 's' : ''}, layers ${r.unpack ? 'unpacked' : 'stored only'}. Each approach starts from empty node stores. Ran in ${(r.durationMs / 1000).toFixed(1)} s.</p>
<table><thead><tr><th>approach</th><th>layer hit rate</th><th>byte hit rate</th><th>bytes fetched</th><th>vs hostpull</th><th>registry egress</th><th>store size</th><th>cold pull (median, n)</th><th>warm pull (median, n)</th><th>byte-count mismatches</th></tr></thead>
<tbody>
${rows}
</tbody></table>
<p>Registry egress for hostpull includes the server reading package manifests and configs. Pull times exclude the server's first synthesis of each composite (${r.phasesMs.serverPrime ?? 0} ms for all of them, done before the replay).</p>
${lineChartSvg('Cumulative hit rate over the run', hitLines, 1, (v) => `${Math.round(v * 100)}%`)}
${lineChartSvg('Cumulative bytes fetched', byteLines, yBytes, formatBytes)}
</body></html>
`;
}
