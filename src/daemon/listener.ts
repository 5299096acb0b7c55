import { chmod, chown, link, unlink } from 'node:fs/promises';
import { createServer, type RequestListener } from 'node:http';
import { basename, dirname, join } from 'node:path';

/**
 * One way in to the daemon (the HTTP API on its unix socket; a gRPC service can be another).
 * A stop first makes every listener stop accepting, then waits for the requests in flight (the
 * RequestTracker), then closes the listeners: so each listener must keep serving the
 * connections it has until {@link close}.
 */
export interface Listener {
  /** For logs: what and where. */
  readonly name: string;
  /** Takes no new connections; connections with a request in flight keep going. */
  stopAccepting(): void;
  /** Closes every connection (none has a request in flight any more) and releases the endpoint. */
  close(): Promise<void>;
}

export interface UnixHttpOptions {
  path: string;
  handler: RequestListener;
  /** Socket file mode, applied through the umask while binding so it is never wider. */
  mode: number;
  /** Group that owns the socket. Default: ours. */
  group?: number | undefined;
}

/** Bytes of a socket path that fit `sockaddr_un.sun_path` (108 on Linux, with its NUL). */
const SUN_PATH_MAX = 107;

/**
 * HTTP/1.1 on a unix socket, which answers at `path` only once it has its mode (bound under a
 * umask) and its group: a group member who connects the moment the daemon starts (or a readiness
 * probe) never meets a socket that is still root's alone. With a group, the socket is bound under
 * a temporary name beside `path`, given its group, then linked into place (link, not rename: a
 * socket someone else put at `path` meanwhile is kept). Only a path too long for that name gets
 * its group right after the bind instead.
 */
export async function listenUnixHttp(options: UnixHttpOptions): Promise<Listener> {
  const srv = createServer(options.handler);
  const temporary = join(dirname(options.path), `.${basename(options.path)}.${process.pid}`);
  // A longer name than sun_path holds cannot be bound.
  const viaTemporary = options.group !== undefined && Buffer.byteLength(temporary) <= SUN_PATH_MAX;
  const bindPath = viaTemporary ? temporary : options.path;
  if (viaTemporary) await unlink(bindPath).catch(() => undefined); // left by a killed daemon with our pid
  const previous = process.umask(0o777 & ~options.mode);
  try {
    await new Promise<void>((resolve, reject) => {
      srv.once('error', reject);
      srv.listen(bindPath, () => {
        srv.off('error', reject);
        resolve();
      });
    });
  } finally {
    process.umask(previous);
  }
  try {
    await chmod(bindPath, options.mode);
    if (options.group !== undefined) await chown(bindPath, process.getuid?.() ?? 0, options.group);
    if (viaTemporary) {
      await link(bindPath, options.path);
      await unlink(bindPath);
    }
  } catch (err) {
    srv.close();
    if (viaTemporary) await unlink(bindPath).catch(() => undefined);
    throw err;
  }
  let closed: Promise<void> | undefined;
  const stopAccepting = () => {
    closed ??= new Promise<void>((resolve) => srv.close(() => resolve()));
    srv.closeIdleConnections();
  };
  return {
    name: `http on ${options.path}`,
    stopAccepting,
    async close() {
      stopAccepting();
      srv.closeAllConnections();
      await closed;
      await unlink(options.path).catch(() => undefined);
    },
  };
}
