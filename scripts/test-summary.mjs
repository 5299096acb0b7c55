// Prints "N passed, N failed[, N skipped]" from vitest's JSON report: the last line CI reads.
import { readFileSync } from 'node:fs';

const path = process.argv[2] ?? '.vitest-report.json';
let report;
try {
  report = JSON.parse(readFileSync(path, 'utf8'));
} catch {
  console.error(`test-summary: no vitest report at ${path}: the suite did not run`);
  console.log('0 passed, 1 failed');
  process.exit(1);
}
const files = report.testResults ?? [];
// A file that failed to load has no failing test but must not hide: count it as one failure.
const brokenFiles = files.filter((f) => f.status === 'failed' && !(f.assertionResults ?? []).some((a) => a.status === 'failed')).length;
const passed = report.numPassedTests ?? 0;
const failed = (report.numFailedTests ?? 0) + brokenFiles;
const skipped = (report.numPendingTests ?? 0) + (report.numTodoTests ?? 0);
console.log(`${passed} passed, ${failed} failed${skipped ? `, ${skipped} skipped` : ''}`);
process.exit(failed > 0 || passed === 0 ? 1 : 0);
