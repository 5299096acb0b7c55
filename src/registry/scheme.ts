import { isIP } from 'node:net';
import { RegistryError } from './errors.js';

/** The host of `host[:port]`, `[v6]:port`, without brackets. */
function hostOf(registry: string): string {
  if (registry.startsWith('[')) {
    const end = registry.indexOf(']');
    return end > 0 ? registry.slice(1, end) : registry;
  }
  const colons = registry.split(':').length - 1;
  if (colons > 1) return registry; // bare IPv6 without port
  const i = registry.indexOf(':');
  return i >= 0 ? registry.slice(0, i) : registry;
}

/** 127.0.0.0/8, ::1 and localhost: traffic there never leaves the machine. */
export function isLoopbackHost(host: string): boolean {
  const h = host.toLowerCase().replace(/^\[|\]$/g, '');
  if (h === 'localhost' || h.endsWith('.localhost')) return true;
  if (isIP(h) === 4) return h.startsWith('127.');
  if (isIP(h) === 6) return h === '::1' || h === '0:0:0:0:0:0:0:1' || /^::ffff:127\./.test(h);
  return false;
}

/**
 * Plain http is spoken only to loopback hosts and to hosts the user listed as insecure; everything
 * else is https. A registry written with a scheme (`http://…`) is refused unless it qualifies.
 */
export function registryOrigin(registry: string, insecureRegistries: readonly string[]): string {
  let reg = registry;
  const m = /^(https?):\/\/(.*?)\/*$/i.exec(registry);
  if (m) {
    reg = m[2]!;
    if (m[1]!.toLowerCase() === 'http' && !allowsPlainHttp(reg, insecureRegistries)) {
      throw insecureError(registry);
    }
    if (m[1]!.toLowerCase() === 'https') return `https://${reg}`;
  }
  return allowsPlainHttp(reg, insecureRegistries) ? `http://${reg}` : `https://${reg}`;
}

export function allowsPlainHttp(hostPort: string, insecureRegistries: readonly string[]): boolean {
  if (isLoopbackHost(hostOf(hostPort))) return true;
  const lower = hostPort.toLowerCase();
  return insecureRegistries.some((r) => r.toLowerCase() === lower || r.toLowerCase() === hostOf(lower));
}

function insecureError(what: string): RegistryError {
  return new RegistryError('INSECURE_REGISTRY', `refusing plain http to ${what}: only loopback hosts and listed insecure registries may use http`, {
    hint: 'serve the registry over https, or add it to insecureRegistries (--insecure-registry) if you trust the network',
  });
}

/** Checks a URL we are about to contact (redirect target, token realm) against the http rule. */
export function assertSchemeAllowed(url: URL, insecureRegistries: readonly string[]): void {
  if (url.protocol === 'https:') return;
  if (url.protocol === 'http:' && allowsPlainHttp(url.host, insecureRegistries)) return;
  throw insecureError(`${url.protocol}//${url.host}`);
}
