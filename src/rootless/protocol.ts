/**
 * What the rootless parent (the user's `hostpull run`) and its child (the same program, re-run as
 * root of a private user+mount namespace) say to each other: one JSON object per line on a
 * socketpair that the child sees as fd 3. Both ends are this program, so the format is private
 * and may change with it; it is still checked, because a line could be cut by a dying peer.
 */
import { Socket } from 'node:net';
import { StringDecoder } from 'node:string_decoder';
import { errorFromJson, errorToJson, HostpullError, type ErrorJson } from '../errors.js';
import type { LogFormat, LogLevel } from '../log.js';
import type { Mount } from '../rootfs/index.js';
import type { RuntimeSpecInput, RuntimeInfo } from '../runtime/index.js';

/** The file descriptor of the channel in the child. */
export const CHANNEL_FD = 3;

/** Everything the child needs to mount the rootfs and run the container. */
export interface RootlessRunRequest {
  /** The planned rootfs mount (an overlay with `userxattr`, or a bind for a one-layer read-only view). */
  mount: Mount;
  /** Input of buildRuntimeSpec; `rootfsPath` is the mount's target. The spec is built after mounting, because User and WorkingDir are resolved inside the rootfs. */
  spec: RuntimeSpecInput;
  bundleDir: string;
  containerId: string;
  stateRoot: string;
  runtime: RuntimeInfo;
  tty: boolean;
  keep: boolean;
  logLevel: LogLevel;
  /** The parent's log format: the child's lines go to the same stderr. */
  logFormat: LogFormat;
}

export type ParentMessage = { type: 'run'; request: RootlessRunRequest } | { type: 'abort' };

export type ChildMessage =
  /** The rootfs is mounted inside the namespace; the container is about to start. */
  | { type: 'mounted' }
  | { type: 'exit'; exitCode: number; signal?: NodeJS.Signals }
  | ({ type: 'error' } & ErrorJson);

/** An error for the other side (see errorToJson: no stack, no cause). */
export function errorMessage(err: unknown): ChildMessage {
  return { type: 'error', ...errorToJson(err, 'ROOTLESS_CHILD_FAILED') };
}

/** The error a child reported, rebuilt on the parent's side with the same code, message and hint. */
export function errorFromMessage(m: Extract<ChildMessage, { type: 'error' }>): HostpullError {
  return errorFromJson(m, 'ROOTLESS_CHILD_FAILED');
}

/**
 * Newline-delimited JSON over a socket. `onMessage` gets each complete object; a line that is
 * not JSON (or an object without `type`) ends the channel with a CHANNEL_INVALID error.
 */
export class LineChannel<In extends { type: string }, Out extends { type: string }> {
  #socket: Socket;
  #decoder = new StringDecoder('utf8');
  #buffer = '';

  constructor(socket: Socket, onMessage: (m: In) => void, onError: (err: HostpullError) => void) {
    this.#socket = socket;
    socket.on('data', (chunk: Buffer) => {
      this.#buffer += this.#decoder.write(chunk);
      let nl: number;
      while ((nl = this.#buffer.indexOf('\n')) >= 0) {
        const line = this.#buffer.slice(0, nl);
        this.#buffer = this.#buffer.slice(nl + 1);
        if (line.trim() === '') continue;
        let m: unknown;
        try {
          m = JSON.parse(line);
        } catch {
          m = undefined;
        }
        if (typeof m !== 'object' || m === null || typeof (m as { type?: unknown }).type !== 'string') {
          onError(new HostpullError('CHANNEL_INVALID', `rootless helper channel: not a message: ${line.slice(0, 200)}`));
          socket.destroy();
          return;
        }
        onMessage(m as In);
      }
    });
    // A peer that exits closes its end: ECONNRESET/EPIPE then are not ours to report.
    socket.on('error', () => undefined);
  }

  /** Sends one message; resolves once it is handed to the kernel (so a process may exit after it). */
  send(m: Out): Promise<void> {
    return new Promise((resolve) => {
      if (this.#socket.destroyed || !this.#socket.writable) return resolve();
      this.#socket.write(`${JSON.stringify(m)}\n`, () => resolve());
    });
  }

  close(): void {
    this.#socket.destroy();
  }
}
