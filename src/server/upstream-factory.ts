import { join } from 'node:path';
import type { Logger } from '../log.js';
import { HostpullError } from '../errors.js';
import { LayoutUpstream } from './layout-upstream.js';
import { RegistryUpstream } from './registry-upstream.js';
import type { Upstream } from './upstream.js';

export interface UpstreamChoice {
  /** Registry URL; wins when given. */
  upstream?: string | undefined;
  /** OCI layout directory. Default `<root>/server/layout`. */
  layout?: string | undefined;
  root?: string | undefined;
  insecureRegistries?: string[] | undefined;
  logger?: Logger | undefined;
}

/** The upstream `hostpull serve` and `hostpull publish` agree on: a registry URL, else a layout dir. */
export function createUpstream(choice: UpstreamChoice): Upstream {
  if (choice.upstream && choice.layout) throw new HostpullError('USAGE', 'give either --upstream or --layout, not both');
  if (choice.upstream) {
    return new RegistryUpstream({ url: choice.upstream, insecureRegistries: choice.insecureRegistries ?? [], ...(choice.logger ? { logger: choice.logger } : {}) });
  }
  return new LayoutUpstream({ dir: choice.layout ?? join(choice.root ?? '.', 'server', 'layout') });
}
