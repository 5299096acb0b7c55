// The lazy benchmarks' HTTP proxy between the nodes and `hostpull serve`: it logs every response
// byte it forwards with its arrival time (bytes a run received before its first output), and
// every request with when its answer's headers came back.
import { createServer, request } from 'node:http';

/**
 * Starts a proxy to `target` (a URL) on a free 127.0.0.1 port. With `refusePrefetchLists`, the
 * server's prefetch-list API is answered 404 here: `true` for every method (no list is learned or
 * served, and every lazy start is an image's first), or a list of methods: `['GET', 'HEAD']`
 * serves none but lets a start teach the server its list, `['PUT']` serves lists but learns none.
 */
export async function countingProxy(target, { refusePrefetchLists = false } = {}) {
  const refused = (method) => refusePrefetchLists === true || (Array.isArray(refusePrefetchLists) && refusePrefetchLists.includes(method));
  const t = new URL(target);
  const log = [];
  /** Every request: when it came in, when its answer's headers went back, with what status. */
  const requests = [];
  const server = createServer((req, res) => {
    const seen = { at: performance.now(), method: req.method, path: req.url, range: req.headers.range };
    requests.push(seen);
    if (refused(req.method) && req.url.startsWith('/hostpull/v1/prefetch/')) {
      req.resume();
      Object.assign(seen, { headersAt: performance.now(), status: 404 });
      res.writeHead(404, { 'content-type': 'application/json' }).end('{"errors":[{"code":"NOT_FOUND","message":"this benchmark serves no prefetch lists"}]}');
      return;
    }
    const up = request({ host: t.hostname, port: t.port, path: req.url, method: req.method, headers: req.headers }, (r) => {
      Object.assign(seen, { headersAt: performance.now(), status: r.statusCode });
      res.writeHead(r.statusCode ?? 502, r.headers);
      r.on('data', (c) => log.push({ at: performance.now(), bytes: c.length, path: req.url, range: req.headers.range }));
      r.pipe(res);
    });
    up.on('error', () => res.destroy());
    req.pipe(up);
  });
  await new Promise((r) => server.listen(0, '127.0.0.1', r));
  return { host: `127.0.0.1:${server.address().port}`, log, requests, close: () => new Promise((r) => server.close(r)) };
}
