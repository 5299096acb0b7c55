// A bandwidth-limited link for the benchmarks: a network namespace of our own joined to the host
// by a veth pair, token-bucket shaped both ways, so a server started inside it is reached the way
// a node reaches a registry over a real network rather than over loopback. Bandwidth only: this
// kernel has no netem, so the link adds no round-trip delay.
import { execFileSync } from 'node:child_process';

const run = (args) => execFileSync(args[0], args.slice(1), { stdio: ['ignore', 'ignore', 'pipe'] });

/**
 * Creates the namespace and link at `rate` (tc syntax: `200mbit`, `1gbit`). Returns the
 * namespace name, the address to listen on inside it, and close() (idempotent; also on exit).
 */
export function shapedLink(rate) {
  if (!/^\d+(\.\d+)?[kmg]?bit$/.test(rate)) throw new Error(`LINK=${rate}: expected a tc rate such as 200mbit or 1gbit`);
  const tag = String(process.pid % 100000);
  const ns = `hpbench-${tag}`;
  const host = `hpb${tag}a`;
  const peer = `hpb${tag}b`;
  // A /30 of the benchmarking range (RFC 2544), picked by pid so two runs do not collide.
  const net = `198.18.${(process.pid >> 6) % 250}.${(process.pid % 64) * 4}`;
  const [a, b, c, d] = net.split('.').map(Number);
  const hostAddr = `${a}.${b}.${c}.${d + 1}`;
  const nsAddr = `${a}.${b}.${c}.${d + 2}`;
  let closed = false;
  const close = () => {
    if (closed) return;
    closed = true;
    try {
      run(['ip', 'link', 'del', host]); // takes the peer with it
    } catch {
      // already gone
    }
    try {
      run(['ip', 'netns', 'del', ns]);
    } catch {
      // already gone
    }
  };
  process.once('exit', close);
  // Ctrl-C ends a benchmark without an 'exit' event: the namespace and the link go all the same.
  for (const sig of ['SIGINT', 'SIGTERM']) {
    process.once(sig, () => {
      close();
      process.exit(128 + (sig === 'SIGINT' ? 2 : 15));
    });
  }
  try {
    run(['ip', 'netns', 'add', ns]);
    run(['ip', 'link', 'add', host, 'type', 'veth', 'peer', 'name', peer]);
    run(['ip', 'link', 'set', peer, 'netns', ns]);
    run(['ip', 'addr', 'add', `${hostAddr}/30`, 'dev', host]);
    run(['ip', 'link', 'set', host, 'up']);
    run(['ip', 'netns', 'exec', ns, 'ip', 'addr', 'add', `${nsAddr}/30`, 'dev', peer]);
    run(['ip', 'netns', 'exec', ns, 'ip', 'link', 'set', peer, 'up']);
    run(['ip', 'netns', 'exec', ns, 'ip', 'link', 'set', 'lo', 'up']);
    // Both directions: requests leave through the host side, blobs come back through the peer.
    const tbf = ['root', 'tbf', 'rate', rate, 'burst', '256kb', 'latency', '200ms'];
    run(['tc', 'qdisc', 'add', 'dev', host, ...tbf]);
    run(['ip', 'netns', 'exec', ns, 'tc', 'qdisc', 'add', 'dev', peer, ...tbf]);
  } catch (err) {
    close();
    throw new Error(`cannot set up the shaped link (needs root, ip and tc): ${err.stderr?.toString().trim() || err.message}`);
  }
  return { ns, nsAddr, rate, close };
}
