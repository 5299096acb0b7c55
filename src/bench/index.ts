/**
 * `hostpull bench`: the workload replay against fresh stores and its HTML report.
 */
export { renderHtmlReport } from './report-html.js';
export { type ApproachResult, type BenchResult, runBench } from './run.js';
