import { Agent as HttpAgent, request as httpRequest, type ClientRequest, type IncomingMessage, type RequestOptions } from 'node:http';
import type { Agent as HttpsAgent } from 'node:https';
import type { SecureContext } from 'node:tls';
import type { Socket } from 'node:net';
import { pipeline, Readable } from 'node:stream';
import { urlToHttpOptions } from 'node:url';
import type { DispatchRequest, DispatchResponse, RegistryDispatcher, ResponseBody } from './dispatcher.js';

/**
 * Registry HTTP over Node's own http and https modules, for the CLI working in-process (pull, run,
 * mount, login) and for the daemon. Why not undici there: its agent and request API are 32
 * modules and a wasm parser to load, ~20 ms of CPU before the first request, while node:http is
 * compiled into Node (~2 ms). Measured alternated on a tmpfs store, an in-process pull of one new
 * 9 MB layer from the full-size peer images took 241 instead of 259 ms (medians of 12), and an
 * up-to-date pull's own time went from 51 to 18 ms. In a daemon the load fell on its first pull,
 * with the wasm parser's compile and then its optimising recompile on the pull's two cores:
 * a fresh daemon's first pull of the 45 MB peer images took ~380 instead of ~320 ms (medians of
 * 8), with no cost after (see start-daemon.ts). The lazy helper too (fuse-helper-main.ts): its
 * requests come while the container it serves starts beside it. The server, which sends thousands
 * of requests for its life, keeps undici's pool.
 *
 * The contract is the one the transport has with undici's Agent (dispatcher.ts): a keep-alive
 * pool of `connections` sockets per origin, a headers timeout from sending to the end of the
 * headers, an idle timeout on the body that counts only while its reader waits for bytes (a
 * reader that holds back, e.g. a layer's unpack behind a slow disk, is never cut), and errors
 * that carry a network errno (errors.ts), ETIMEDOUT for both timeouts.
 */
export class NodeHttpDispatcher implements RegistryDispatcher {
  /**
   * The pool of both agents: `timeout` is what a free socket may stay idle (node:http lowers it to
   * the server's Keep-Alive hint, and reads the hint only when it is set). On a socket in use it
   * only raises 'timeout' events, which nothing here listens to: the headers and body timeouts
   * below are the request's.
   */
  readonly #pool: { keepAlive: true; maxSockets: number; timeout: number };
  readonly #http: HttpAgent;
  #https: Promise<{ agent: HttpsAgent; request: typeof httpRequest }> | undefined;

  /** The TLS agent's context, when not Node's default (extra-ca.ts). */
  readonly #tlsContext: (() => Promise<SecureContext>) | undefined;

  /**
   * `idleMs`: a kept-alive connection idle this long is closed (dispatcher.ts, KEEP_ALIVE_IDLE_MS).
   * `tlsContext`: what the TLS agent trusts, asked for when it is made (undefined: Node's default).
   */
  constructor(connections: number, idleMs: number, tlsContext?: () => Promise<SecureContext>) {
    this.#pool = { keepAlive: true, maxSockets: connections, timeout: idleMs };
    this.#http = new HttpAgent(this.#pool);
    this.#tlsContext = tlsContext;
  }

  async request(req: DispatchRequest): Promise<DispatchResponse> {
    const url = new URL(req.path, req.origin);
    // TLS is loaded for an https registry only (most of a node's are, a test's and a lab's are not).
    const tls = url.protocol === 'https:' ? await this.#tls() : undefined;
    return new Promise((resolve, reject) => {
      const options: RequestOptions & { servername?: string } = {
        // Protocol, host name (an IPv6 literal without its brackets, which a DNS lookup would
        // refuse), port and path, as node:http takes them.
        ...urlToHttpOptions(url),
        method: req.method,
        headers: req.headers,
        agent: tls?.agent ?? this.#http,
        // Plain http needs no TLS server name, and node:http's agent derives one for every new
        // socket otherwise (its first call compiles an IPv6 pattern, ~3 ms; see daemon/client.ts).
        ...(tls ? {} : { servername: 'registry' }),
        ...(req.signal ? { signal: req.signal } : {}),
      };
      const out: ClientRequest = (tls?.request ?? httpRequest)(options);
      const headersTimer =
        req.headersTimeout > 0 ? setTimeout(() => out.destroy(timedOut(`no response headers within ${req.headersTimeout} ms`)), req.headersTimeout) : undefined;
      out.once('error', (err) => {
        clearTimeout(headersTimer);
        reject(err);
      });
      out.once('response', (res) => {
        clearTimeout(headersTimer);
        if (req.bodyTimeout > 0) watchIdleBody(res, req.bodyTimeout);
        resolve({ statusCode: res.statusCode ?? 0, headers: headersOf(res), body: dumpable(res) });
      });
      if (req.body instanceof Readable) pipeline(req.body, out, (err) => err && out.destroy(err));
      else out.end(req.body);
    });
  }

  async close(): Promise<void> {
    this.#http.destroy();
    if (this.#https) (await this.#https).agent.destroy();
  }

  #tls(): Promise<{ agent: HttpsAgent; request: typeof httpRequest }> {
    this.#https ??= Promise.all([import('node:https'), this.#tlsContext?.()]).then(([https, secureContext]) => ({
      agent: new https.Agent({ ...this.#pool, ...(secureContext ? { secureContext } : {}) }),
      request: https.request,
    }));
    return this.#https;
  }
}

function timedOut(message: string): Error {
  return Object.assign(new Error(message), { code: 'ETIMEDOUT' });
}

/** undici's shape: one value as a string, a header sent more than once as an array. */
function headersOf(res: IncomingMessage): Record<string, string | string[] | undefined> {
  const out: Record<string, string | string[] | undefined> = {};
  for (const [name, values] of Object.entries(res.headersDistinct)) if (values) out[name] = values.length === 1 ? values[0] : values;
  return out;
}

/**
 * Fails the body with ETIMEDOUT when no byte arrives for `ms` while its reader waits. The clock
 * watches the socket: node:http pauses it when the body's reader holds back, and the clock
 * stops then; it stops for good once the body has all arrived, and leaves the socket alone once
 * the body is done (a kept-alive socket serves the next request).
 */
function watchIdleBody(res: IncomingMessage, ms: number): void {
  const socket: Socket = res.socket;
  let timer: NodeJS.Timeout | undefined;
  const arm = () => {
    clearTimeout(timer);
    // A body that has all arrived waits for nothing, however slowly it is read. A paused socket
    // may still announce a 'resume' (a pause() between resume() and its deferred event).
    if (!res.complete && !socket.isPaused()) timer = setTimeout(() => res.complete || res.destroy(timedOut(`no byte of the response body for ${ms} ms`)), ms);
  };
  const disarm = () => clearTimeout(timer);
  const stop = () => {
    disarm();
    socket.off('data', arm);
    socket.off('resume', arm);
    socket.off('pause', disarm);
  };
  socket.on('data', arm);
  socket.on('resume', arm);
  socket.on('pause', disarm);
  res.once('end', stop);
  res.once('close', stop);
  if (!socket.isPaused()) arm();
}

/** The body with undici's `dump`: drains up to `limit` bytes so the socket is reused, else drops the connection. */
function dumpable(res: IncomingMessage): ResponseBody {
  return Object.assign(res, {
    async dump({ limit = 128 * 1024 }: { limit?: number } = {}): Promise<void> {
      const declared = Number(res.headers['content-length']);
      if (declared > limit) {
        res.destroy();
        return;
      }
      let seen = 0;
      for await (const chunk of res) {
        seen += (chunk as Buffer).length;
        if (seen > limit) {
          res.destroy();
          return;
        }
      }
    },
  });
}
