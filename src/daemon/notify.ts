import { execFile } from 'node:child_process';
import type { Logger } from '../log.js';

export interface SystemdNotifierOptions {
  /** $NOTIFY_SOCKET as systemd set it. Default: taken from the environment (and removed from it). */
  socket?: string | undefined;
  /** The helper that sends the datagram. Default `systemd-notify`. */
  command?: string;
  /** Give up on one message after this long. Default 5 s. */
  timeoutMs?: number;
  logger?: Logger;
}

/**
 * sd_notify(3) without libsystemd. The protocol is one datagram on the AF_UNIX SOCK_DGRAM socket
 * named by $NOTIFY_SOCKET, and Node's `dgram` only speaks UDP, so we spawn `systemd-notify`:
 *
 * - Run as root (the service's case), it sends with *our* pid as the sender credentials (it
 *   "pretends to have the PID of the invoking process", systemd-notify(1)), so systemd attributes
 *   the message to the main process; unprivileged, it falls back to its own pid, which
 *   NotifyAccess=all in hostpull.service accepts.
 * - Without --no-block it waits for PID 1 to have processed the message (BARRIER=1), so the
 *   helper exiting first cannot make systemd drop it as "from an unknown process".
 *
 * Messages go out one at a time in call order (READY must not overtake STATUS). Without a
 * socket (not under systemd) every call is a no-op.
 */
export class SystemdNotifier {
  readonly #socket: string | undefined;
  readonly #command: string;
  readonly #timeoutMs: number;
  readonly #logger: Logger | undefined;
  #queue: Promise<void> = Promise.resolve();

  constructor(options: SystemdNotifierOptions = {}) {
    this.#socket = 'socket' in options ? options.socket : process.env.NOTIFY_SOCKET;
    if (!('socket' in options)) {
      // Like sd_notify's unset_environment: runc and other children must not talk to systemd as us.
      delete process.env.NOTIFY_SOCKET;
    }
    this.#command = options.command ?? 'systemd-notify';
    this.#timeoutMs = options.timeoutMs ?? 5_000;
    this.#logger = options.logger;
  }

  get enabled(): boolean {
    return this.#socket !== undefined && this.#socket !== '';
  }

  /** Sends `KEY=VALUE` fields (READY=1, STATUS=…, STOPPING=1); never throws, logs failures. */
  notify(fields: Record<string, string | number>): Promise<void> {
    if (!this.enabled) return Promise.resolve();
    // systemd-notify takes each assignment as one argument; a newline would split a field.
    const args = Object.entries(fields).map(([k, v]) => `${k}=${String(v).replace(/\n/g, ' ')}`);
    this.#queue = this.#queue.then(
      () =>
        new Promise<void>((resolve) => {
          execFile(this.#command, args, { env: { ...process.env, NOTIFY_SOCKET: this.#socket }, timeout: this.#timeoutMs }, (err, _out, stderr) => {
            if (err) this.#logger?.warn({ args, err: err.message, stderr: String(stderr).trim() }, 'systemd notification failed');
            resolve();
          });
        }),
    );
    return this.#queue;
  }
}
