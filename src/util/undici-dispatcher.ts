import { createRequire } from 'node:module';
import type { Agent } from 'undici';

/** The undici dispatcher classes we use, and the file of each inside the package. */
interface DispatcherClasses {
  Agent: typeof Agent;
}
const DISPATCHER_FILES: { [K in keyof DispatcherClasses]: string } = {
  Agent: 'undici/lib/dispatcher/agent.js',
};

/**
 * One of undici's dispatchers without the rest of undici. The package entry loads fetch,
 * WebSocket, EventSource, the cache and the mock agents as well: measured here, `require('undici')`
 * cost 82-97 ms of CPU against 29-38 ms for the agent and the request API alone, on every command
 * that talks to a registry or to the daemon. What the entry adds for us is one line, which this
 * repeats: the request API mixed into Dispatcher.prototype. Should a release move these files,
 * the package entry is used instead.
 */
export async function loadDispatcherClass<K extends keyof DispatcherClasses>(name: K): Promise<DispatcherClasses[K]> {
  try {
    const require = createRequire(import.meta.url);
    const DispatcherClass = require(DISPATCHER_FILES[name]) as DispatcherClasses[K];
    const Dispatcher = require('undici/lib/dispatcher/dispatcher.js') as { prototype: object };
    const api = require('undici/lib/api/index.js') as Record<string, unknown>;
    Object.assign(Dispatcher.prototype, api);
    if (typeof DispatcherClass === 'function' && typeof (DispatcherClass.prototype as { request?: unknown }).request === 'function') return DispatcherClass;
  } catch {
    // fall through to the package entry
  }
  return (await import('undici'))[name];
}
