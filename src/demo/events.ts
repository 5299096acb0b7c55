import type { Digest } from '../oci/index.js';
import type { OutputStream } from './cli-process.js';

/**
 * What the demo reports as it goes; the CLI renders these (nothing under src/demo prints).
 * `command` is the exact hostpull invocation about to run, `output` is that child's output.
 */
export type DemoEvent =
  | { type: 'section'; title: string }
  | { type: 'note'; text: string }
  | { type: 'env'; vars: Record<string, string> }
  | { type: 'command'; args: string[] }
  | { type: 'output'; stream: OutputStream; text: string }
  | { type: 'built'; what: string; cached: boolean; ms: number; files: number; bytes: number; debs: number }
  | { type: 'published'; what: string; image: string; manifestDigest: Digest; layerSize: number; cached: boolean }
  | { type: 'pull-layers'; layers: PulledLayer[] };

export interface PulledLayer {
  digest: Digest;
  /** Code name of the package the layer belongs to, or 'base'. */
  owner: string;
  size: number;
  fetched: boolean;
  fetchedBytes: number;
}
