import { readFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import type { SecureContext } from 'node:tls';
import type { Logger } from '../log.js';

/**
 * A PEM file of CA certificates that TLS connections to registries trust beside Node's bundled
 * roots. The launcher (scripts/launcher.sh) moves NODE_EXTRA_CA_CERTS here.
 *
 * Why: with NODE_EXTRA_CA_CERTS set, Node parses its ~140 bundled roots and every certificate of
 * the named file as it starts, whether or not the command will speak TLS. With Debian's bundle
 * named there (as on this project's machines), that was 35-40 ms of every hostpull process's
 * start: `node -e 0` took 56 ms, 20 ms without the variable. Read here instead, the file costs
 * the same once, at the first TLS connection, and a command talking to a loopback registry over
 * plain http never pays it.
 */
export const EXTRA_CA_ENV = 'HOSTPULL_EXTRA_CA_CERTS';

/**
 * The extra CA files of environment `env`: HOSTPULL_EXTRA_CA_CERTS, with NODE_EXTRA_CA_CERTS when
 * both are set (a context of our own replaces the roots Node extended with the latter); none without the
 * former, when Node's default is what TLS trusts.
 */
export function extraCaFiles(env: NodeJS.ProcessEnv): string[] {
  const ours = env[EXTRA_CA_ENV];
  if (!ours) return [];
  return env.NODE_EXTRA_CA_CERTS ? [ours, env.NODE_EXTRA_CA_CERTS] : [ours];
}

/**
 * A TLS context that trusts what Node trusts with NODE_EXTRA_CA_CERTS naming `files`: its bundled
 * roots and the files' certificates. A file that cannot be read is skipped with a warning, as Node
 * skips one named in NODE_EXTRA_CA_CERTS. One context for every connection (the agents' and
 * undici's `secureContext`): given as `ca`, the certificates would be parsed again for each new
 * connection, as tls.connect makes a context per call.
 */
export async function contextWithExtraCa(files: readonly string[], logger: Logger): Promise<SecureContext> {
  const extra: string[] = [];
  for (const file of files) {
    try {
      extra.push(await readFile(file, 'utf8'));
    } catch (err) {
      logger.warn({ file, err: (err as Error).message }, 'ignoring extra CA certificates: cannot read them');
    }
  }
  // Loaded here, not with the module: node:tls is for a command that reaches an https registry.
  // Required, not imported: the CLI's startup snapshot (scripts/bundle.mjs) has no dynamic import.
  const tls = createRequire(import.meta.url)('node:tls') as typeof import('node:tls');
  return tls.createSecureContext({ ca: [...tls.rootCertificates, ...extra] });
}
