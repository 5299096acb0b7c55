/**
 * Prometheus text exposition (format 0.0.4) for the few series the server has. Hand-written
 * rather than prom-client: four metrics do not justify a dependency with a global default
 * registry (we keep no module-level singletons; each server owns its metrics).
 */
const LATENCY_BUCKETS = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];

function esc(v: string): string {
  return v.replace(/\\/g, '\\\\').replace(/\n/g, '\\n').replace(/"/g, '\\"');
}

export class ServerMetrics {
  readonly #requests = new Map<string, number>();
  #cacheHits = 0;
  #cacheMisses = 0;
  readonly #latency = new Map<string, { buckets: number[]; sum: number; count: number }>();

  request(route: string, method: string, status: number): void {
    const key = `route="${esc(route)}",method="${esc(method)}",status="${status}"`;
    this.#requests.set(key, (this.#requests.get(key) ?? 0) + 1);
  }

  compositeCache(hit: boolean): void {
    if (hit) this.#cacheHits++;
    else this.#cacheMisses++;
  }

  upstreamLatency(operation: string, seconds: number): void {
    let h = this.#latency.get(operation);
    if (!h) {
      h = { buckets: LATENCY_BUCKETS.map(() => 0), sum: 0, count: 0 };
      this.#latency.set(operation, h);
    }
    LATENCY_BUCKETS.forEach((b, i) => {
      if (seconds <= b) h.buckets[i]!++;
    });
    h.sum += seconds;
    h.count++;
  }

  render(): string {
    const lines: string[] = [];
    lines.push('# HELP hostpull_server_requests_total HTTP requests by route, method and status.');
    lines.push('# TYPE hostpull_server_requests_total counter');
    for (const [k, v] of [...this.#requests].sort()) lines.push(`hostpull_server_requests_total{${k}} ${v}`);
    lines.push('# HELP hostpull_server_composite_cache_total Composite lookups by cache result.');
    lines.push('# TYPE hostpull_server_composite_cache_total counter');
    lines.push(`hostpull_server_composite_cache_total{result="hit"} ${this.#cacheHits}`);
    lines.push(`hostpull_server_composite_cache_total{result="miss"} ${this.#cacheMisses}`);
    lines.push('# HELP hostpull_server_upstream_seconds Latency of upstream operations.');
    lines.push('# TYPE hostpull_server_upstream_seconds histogram');
    for (const [op, h] of [...this.#latency].sort()) {
      LATENCY_BUCKETS.forEach((b, i) => lines.push(`hostpull_server_upstream_seconds_bucket{operation="${esc(op)}",le="${b}"} ${h.buckets[i]}`));
      lines.push(`hostpull_server_upstream_seconds_bucket{operation="${esc(op)}",le="+Inf"} ${h.count}`);
      lines.push(`hostpull_server_upstream_seconds_sum{operation="${esc(op)}"} ${h.sum}`);
      lines.push(`hostpull_server_upstream_seconds_count{operation="${esc(op)}"} ${h.count}`);
    }
    return `${lines.join('\n')}\n`;
  }
}
