import { describe, expect, it } from 'vitest';
import { HostpullError } from '../../../src/errors.js';
import { digestOf } from '../../../src/oci/digest.js';
import type { Descriptor, ImageIndex, Platform } from '../../../src/oci/manifest.js';
import { MediaType } from '../../../src/oci/mediatypes.js';
import { hostPlatform, selectPlatform } from '../../../src/oci/platform.js';

function entry(name: string, platform?: Platform): Descriptor {
  const d: Descriptor = { mediaType: MediaType.OciManifest, digest: digestOf(name), size: 100 };
  if (platform) d.platform = platform;
  return d;
}

function index(...manifests: Descriptor[]): ImageIndex {
  return { schemaVersion: 2, mediaType: MediaType.OciIndex, manifests };
}

function selectError(idx: ImageIndex, want: Platform): HostpullError {
  try {
    selectPlatform(idx, want, 'example.com/pkg:1');
  } catch (err) {
    expect(err).toBeInstanceOf(HostpullError);
    return err as HostpullError;
  }
  throw new Error('selectPlatform did not throw');
}

const amd64 = entry('amd64', { os: 'linux', architecture: 'amd64' });
const arm64 = entry('arm64', { os: 'linux', architecture: 'arm64' });
const arm64v8 = entry('arm64v8', { os: 'linux', architecture: 'arm64', variant: 'v8' });
const armv6 = entry('armv6', { os: 'linux', architecture: 'arm', variant: 'v6' });
const armv7 = entry('armv7', { os: 'linux', architecture: 'arm', variant: 'v7' });
const windows = entry('windows', { os: 'windows', architecture: 'amd64' });
const attestation = entry('attestation');

describe('selectPlatform', () => {
  it('picks the exact os/architecture match', () => {
    expect(selectPlatform(index(windows, arm64, amd64), { os: 'linux', architecture: 'amd64' })).toBe(amd64);
    expect(selectPlatform(index(amd64, windows), { os: 'windows', architecture: 'amd64' })).toBe(windows);
  });

  it('takes arm64 without a variant when v8 is wanted, and the reverse', () => {
    expect(selectPlatform(index(amd64, arm64), { os: 'linux', architecture: 'arm64', variant: 'v8' })).toBe(arm64);
    expect(selectPlatform(index(amd64, arm64v8), { os: 'linux', architecture: 'arm64' })).toBe(arm64v8);
  });

  it('prefers the exact variant over a variant-less entry', () => {
    expect(selectPlatform(index(arm64, arm64v8), { os: 'linux', architecture: 'arm64', variant: 'v8' })).toBe(arm64v8);
    expect(selectPlatform(index(arm64v8, arm64), { os: 'linux', architecture: 'arm64' })).toBe(arm64);
  });

  it('matches 32-bit arm variants exactly', () => {
    expect(selectPlatform(index(armv6, armv7), { os: 'linux', architecture: 'arm', variant: 'v7' })).toBe(armv7);
    const err = selectError(index(armv6), { os: 'linux', architecture: 'arm', variant: 'v7' });
    expect(err.code).toBe('PLATFORM_UNAVAILABLE');
  });

  it('skips entries without a platform (attestations)', () => {
    expect(selectPlatform(index(attestation, amd64), { os: 'linux', architecture: 'amd64' })).toBe(amd64);
  });

  it('fails with PLATFORM_UNAVAILABLE listing what the index offers', () => {
    const err = selectError(index(attestation, windows, arm64v8, armv7), { os: 'linux', architecture: 'amd64' });
    expect(err.code).toBe('PLATFORM_UNAVAILABLE');
    expect(err.message).toBe('example.com/pkg:1 has no manifest for linux/amd64');
    expect(err.hint).toBe('it offers: windows/amd64, linux/arm64/v8, linux/arm/v7');
  });

  it('says so when the index lists no platform-specific manifest at all', () => {
    const err = selectError(index(attestation), { os: 'linux', architecture: 'amd64' });
    expect(err.hint).toBe('it lists no platform-specific manifests');
  });

  it('defaults to the host platform', () => {
    const host = hostPlatform();
    expect(host.os).toBe('linux');
    const mine = entry('mine', { ...host });
    expect(selectPlatform(index(windows, mine))).toBe(mine);
  });
});
