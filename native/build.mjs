// Builds native/ with node-gyp against the headers of the Node that runs this script.
// Why not plain `node-gyp rebuild`: without a nodedir, node-gyp downloads headers, and these
// machines reach no headers server; Node's own prefix ships them (/usr/include/node on Debian,
// <prefix>/include/node in official tarballs), so they always match the running Node's ABI.
// Usage: node native/build.mjs  (run by `npm run build:native`)
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const nativeDir = dirname(fileURLToPath(import.meta.url));
const nodedir = process.env.npm_config_nodedir || dirname(dirname(process.execPath));
if (!existsSync(join(nodedir, 'include', 'node', 'node_api.h'))) {
  console.error(`build:native: no Node headers under ${nodedir}/include/node (install the nodejs headers)`);
  process.exit(1);
}
// gunzip.c inflates with Intel's ISA-L (Debian: libisal-dev, which scripts/provision installs).
if (!existsSync('/usr/include/isa-l/igzip_lib.h') && !existsSync('/usr/local/include/isa-l/igzip_lib.h')) {
  console.error('build:native: ISA-L is missing (no isa-l/igzip_lib.h): install libisal-dev (scripts/provision does)');
  process.exit(1);
}
// npm exports the path of its bundled node-gyp to scripts; outside npm, take npm's copy next to
// this Node, else a node-gyp on PATH.
const npmGyp = join(nodedir, 'lib', 'node_modules', 'npm', 'node_modules', 'node-gyp', 'bin', 'node-gyp.js');
const gypJs = process.env.npm_config_node_gyp || (existsSync(npmGyp) ? npmGyp : undefined);
const [cmd, args] = gypJs ? [process.execPath, [gypJs]] : ['node-gyp', []];
const result = spawnSync(cmd, [...args, 'rebuild', '--directory', nativeDir, '--silent', `--nodedir=${nodedir}`], {
  stdio: 'inherit',
});
if (result.error) {
  console.error(`build:native: cannot run node-gyp: ${result.error.message}`);
  process.exit(1);
}
process.exit(result.status ?? 1);
