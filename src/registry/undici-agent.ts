import { createRequire } from 'node:module';
import type { Agent } from 'undici';

type AgentClass = typeof Agent;

/**
 * undici's Agent without the rest of undici. The package entry loads fetch, WebSocket,
 * EventSource, the cache and the mock agents as well: measured here, `require('undici')` cost
 * 82-97 ms of CPU against 29-38 ms for the agent and the request API alone, on every command
 * that talks to a registry. What the entry adds for us is one line, which this repeats: the
 * request API mixed into Dispatcher.prototype. Should a release move these files, the package
 * entry is used instead.
 */
export async function loadAgentClass(): Promise<AgentClass> {
  try {
    const require = createRequire(import.meta.url);
    const AgentClass = require('undici/lib/dispatcher/agent.js') as AgentClass;
    const Dispatcher = require('undici/lib/dispatcher/dispatcher.js') as { prototype: object };
    const api = require('undici/lib/api/index.js') as Record<string, unknown>;
    Object.assign(Dispatcher.prototype, api);
    if (typeof AgentClass === 'function' && typeof (AgentClass.prototype as { request?: unknown }).request === 'function') return AgentClass;
  } catch {
    // fall through to the package entry
  }
  return (await import('undici')).Agent;
}
