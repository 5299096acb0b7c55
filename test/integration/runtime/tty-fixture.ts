// Run by tty.test.ts under `script` (a real pty): runs a terminal container with inherited stdio
// and prints the result as JSON on the last line. argv: rootfs bundleDir stateRoot containerId.
import { buildRuntimeSpec, detectRuntime, runContainer, writeBundle } from '../../../src/runtime/index.js';

const [rootfsPath, bundleDir, stateRoot, containerId] = process.argv.slice(2) as [string, string, string, string];
const runtime = await detectRuntime('runc');
const spec = buildRuntimeSpec({
  imageConfig: {
    architecture: 'amd64',
    os: 'linux',
    rootfs: { type: 'layers', diff_ids: [] },
    // runc 1.1 applies the window size just after starting the process (it ignores
    // process.consoleSize): wait for it rather than racing it.
    config: {
      Cmd: ['sh', '-c', 'i=0; while [ "$(stty size)" = "0 0" ] && [ $i -lt 100 ]; do sleep 0.05; i=$((i+1)); done; echo "tty=$(tty) $TERM size=$(stty size)"; exit 5'],
    },
  },
  rootfsPath,
  tty: true,
  consoleSize: { height: 27, width: 91 },
  containerId,
});
await writeBundle(bundleDir, spec);
const result = await runContainer({ runtime, bundleDir, containerId, stateRoot });
process.stdout.write(`\nRESULT ${JSON.stringify(result)}\n`);
