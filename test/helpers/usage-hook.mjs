// Loaded with `node --import` (NODE_OPTIONS) into a CLI under test: at exit, writes the process's
// peak RSS and /proc/self/io counters to $HOSTPULL_TEST_USAGE_FILE, so a test can bound the memory
// and the bytes a command used on hostile input. Plain JS: it runs before any TypeScript loader.
import { readFileSync, writeFileSync } from 'node:fs';

const out = process.env.HOSTPULL_TEST_USAGE_FILE;
if (out) {
  process.on('exit', () => {
    const io = {};
    for (const line of readFileSync('/proc/self/io', 'utf8').trim().split('\n')) {
      const [k, v] = line.split(': ');
      io[k] = Number(v);
    }
    writeFileSync(out, JSON.stringify({ maxRssBytes: process.resourceUsage().maxRSS * 1024, ...io }));
  });
}
