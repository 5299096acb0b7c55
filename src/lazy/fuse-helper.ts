import { fork, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { errorFromJson, HostpullError } from '../errors.js';
import type { LogFormat, Logger, LogLevel } from '../log.js';
import { appliedV8Flags, buildFile, inheritableExecArgv } from '../util/index.js';
import type { HelperMessage, HelperRequest, LayerStats, MountedView, MountSpec } from './helper-protocol.js';

type Request = HelperRequest extends infer R ? (R extends { id: number } ? Omit<R, 'id'> : never) : never;

/**
 * The parent's side of the FUSE helper process (fuse-helper-main.ts): starts it, sends requests,
 * matches answers. If the helper dies, every pending and later request fails with
 * LAZY_HELPER_GONE, and `onExit` lets the owner unmount what it served.
 */
export class FuseHelper {
  readonly #child: ChildProcess;
  readonly #pending = new Map<number, { resolve: (v: unknown) => void; reject: (e: Error) => void }>();
  #nextId = 1;
  #gone: Error | undefined;
  readonly pid: number;
  readonly exited: Promise<void>;
  /** The log level and format its lines are written with, as it was started with them. */
  readonly logLevel: LogLevel;
  readonly logFormat: LogFormat;

  private constructor(child: ChildProcess, logger: Logger, logLevel: LogLevel) {
    this.#child = child;
    this.pid = child.pid!;
    this.logLevel = logLevel;
    this.logFormat = logger.format;
    let ready = false;
    this.exited = new Promise((resolve) => {
      child.once('exit', (code, signal) => {
        this.#fail(
          ready
            ? new HostpullError('LAZY_HELPER_GONE', `the lazy-layer helper (pid ${this.pid}) exited (${signal ?? `status ${code}`})`, {
                hint: 'lazy layers it served are gone; run the container again',
              })
            : new HostpullError('LAZY_HELPER_FAILED', `the lazy-layer helper exited at start (${signal ?? `status ${code}`})`),
        );
        if (code !== 0 || signal) logger.warn({ pid: this.pid, code, signal }, 'lazy helper exited');
        resolve();
      });
    });
    child.on('message', (m: HelperMessage) => {
      if (m.type === 'ready') {
        ready = true;
        // The helper must not keep this process alive on its own (a finished `hostpull run`
        // exits): from now on the channel is referenced only while a request waits for an answer.
        child.unref();
        if (this.#pending.size === 0) child.channel?.unref();
        return;
      }
      if (m.type !== 'result') return;
      const p = this.#pending.get(m.id);
      if (!p) return;
      this.#pending.delete(m.id);
      if (m.ok) p.resolve(m.value);
      else p.reject(errorFromJson(m.error, 'LAZY_HELPER_FAILED'));
    });
  }

  /**
   * Forks the helper. Requests may be sent at once: they wait in the IPC channel while the helper
   * loads (~0.2 s on a busy machine), rather than this process waiting for it to say it is ready
   * and only then sending (its event loop may be busy judging TOCs when the answer comes). A
   * helper that cannot start fails every request with LAZY_HELPER_FAILED (and a missing one
   * throws it here).
   */
  static start(logger: Logger, logLevel: LogLevel): FuseHelper {
    const entry = buildFile('lazy/fuse-helper-main.js');
    // Run from the sources (a test importing src/), there is no built helper to fork.
    if (!existsSync(entry)) throw new HostpullError('LAZY_HELPER_FAILED', `the lazy-layer helper ${entry} does not exist`, { hint: 'build the project: npm run build' });
    const child = fork(entry, [], {
      // The V8 flags of the command it serves (see cli/verb-v8-flags.ts): a `run`'s helper
      // lives as long as the run, and with V8's defaults it spent ~0.15 s of CPU optimising its
      // HTTP parsing and FUSE dispatch, on a 2-core node where the starting container waits for CPU.
      execArgv: [...inheritableExecArgv(), ...appliedV8Flags()],
      stdio: ['ignore', 'ignore', 'inherit', 'ipc'],
      serialization: 'advanced',
      // Its log lines go to this process's stderr, worded as this process words its own.
      env: { ...process.env, HOSTPULL_LAZY_LOG_LEVEL: logLevel, HOSTPULL_LAZY_LOG_FORMAT: logger.format },
    });
    const helper = new FuseHelper(child, logger, logLevel);
    child.once('error', (err) => helper.#fail(helper.#gone ?? new HostpullError('LAZY_HELPER_FAILED', `cannot start the lazy-layer helper: ${err.message}`, { cause: err })));
    return helper;
  }

  /** The helper is gone: every request waiting now, or sent from now on, fails with `err`. */
  #fail(err: Error): void {
    this.#gone = err;
    for (const p of this.#pending.values()) p.reject(err);
    this.#pending.clear();
  }

  #request(req: Request): Promise<unknown> {
    if (this.#gone) return Promise.reject(this.#gone);
    const id = this.#nextId++;
    const settle = () => {
      if (this.#pending.size === 0) this.#child.channel?.unref();
    };
    return new Promise((resolve, reject) => {
      if (this.#pending.size === 0) this.#child.channel?.ref();
      this.#pending.set(id, {
        resolve: (v) => {
          resolve(v);
          settle();
        },
        reject: (e) => {
          reject(e);
          settle();
        },
      });
      this.#child.send({ ...req, id } as HelperRequest, (err) => {
        if (err && this.#pending.delete(id)) {
          reject(new HostpullError('LAZY_HELPER_GONE', `cannot reach the lazy-layer helper: ${err.message}`, { cause: err }));
          settle();
        }
      });
    });
  }

  /** Mounts the layer's view (the helper builds its tree and holds it to the spec's claim); what the parent needs of that tree. */
  async mount(spec: MountSpec): Promise<MountedView> {
    return (await this.#request({ type: 'mount', spec })) as MountedView;
  }

  /** Ends one mount's use of the key's view; whether the view is gone (false: another mount of the key still holds it). */
  async unmount(key: string): Promise<boolean> {
    return (await this.#request({ type: 'unmount', key })) === true;
  }

  /** Resolves once these spans are verified in the cache. */
  async prefetch(key: string, indexes: number[]): Promise<void> {
    await this.#request({ type: 'prefetch', key, indexes });
  }

  async spans(key: string, indexes: number[]): Promise<void> {
    await this.#request({ type: 'spans', key, indexes });
  }

  async stats(key: string): Promise<LayerStats | undefined> {
    return (await this.#request({ type: 'stats', key })) as LayerStats | undefined;
  }

  /** Asks the helper to unmount everything and exit, and waits for it. */
  async stop(): Promise<void> {
    if (!this.#gone) {
      // Referenced again: waiting for its exit must keep this process alive.
      this.#child.ref();
      this.#child.kill('SIGTERM');
    }
    await this.exited;
  }
}
