import { HostpullError } from '../errors.js';
import type { Descriptor, ImageIndex, Platform } from './manifest.js';

/** Node's `process.arch` in OCI/Go GOARCH spelling. */
const GOARCH: Record<string, string> = { x64: 'amd64', arm64: 'arm64', arm: 'arm', ia32: '386', ppc64: 'ppc64le', s390x: 's390x', riscv64: 'riscv64' };

export function hostPlatform(): Platform {
  const p: Platform = { os: 'linux', architecture: GOARCH[process.arch] ?? process.arch };
  if (process.arch === 'arm64') p.variant = 'v8';
  return p;
}

function variantMatches(want: string | undefined, have: string | undefined, architecture: string): boolean {
  if (!want || !have) return true;
  // arm64 images are commonly published without a variant or with v8; treat them as equal.
  if (architecture === 'arm64') return (want || 'v8') === (have || 'v8');
  return want === have;
}

/**
 * Picks the manifest for a platform from an index (image-spec image-index.md). Entries without a
 * platform are skipped (attestations and other artifacts use them); an exact variant match wins
 * over a variant-less one.
 */
export function selectPlatform(index: ImageIndex, want: Platform = hostPlatform(), what = 'index'): Descriptor {
  const candidates = index.manifests.filter(
    (d) => d.platform && d.platform.os === want.os && d.platform.architecture === want.architecture && variantMatches(want.variant, d.platform.variant, want.architecture),
  );
  const exact = candidates.find((d) => d.platform?.variant === want.variant);
  const chosen = exact ?? candidates[0];
  if (!chosen) {
    const offered = index.manifests
      .map((d) => (d.platform ? `${d.platform.os}/${d.platform.architecture}${d.platform.variant ? `/${d.platform.variant}` : ''}` : null))
      .filter(Boolean);
    throw new HostpullError('PLATFORM_UNAVAILABLE', `${what} has no manifest for ${want.os}/${want.architecture}`, {
      hint: offered.length ? `it offers: ${offered.join(', ')}` : 'it lists no platform-specific manifests',
    });
  }
  return chosen;
}
