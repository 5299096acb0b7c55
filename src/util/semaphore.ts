/**
 * At most `limit` tasks at once, the rest queued in call order (mapLimit runs a known list; this
 * is for tasks that arrive one by one, such as layers a snapshotter starts fetching ahead).
 */
export class Semaphore {
  readonly #limit: number;
  #running = 0;
  readonly #queue: Array<() => void> = [];

  constructor(limit: number) {
    this.#limit = Math.max(1, limit);
  }

  async run<T>(task: () => Promise<T>): Promise<T> {
    if (this.#running >= this.#limit) await new Promise<void>((resolve) => this.#queue.push(resolve));
    this.#running++;
    try {
      return await task();
    } finally {
      this.#running--;
      this.#queue.shift()?.();
    }
  }
}
