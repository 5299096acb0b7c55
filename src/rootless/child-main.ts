/**
 * Process entry of the rootless helper: `unshare --user --map-root-user --mount … node
 * dist/rootless/child-main.js`, started by {@link runInUserNamespace} only. It is a separate
 * entry rather than a hidden CLI verb so that nothing a user types can reach it, and so it loads
 * only what mounting and running need. It prints nothing itself: the container owns the inherited
 * stdio, and results and errors go back to the parent over the fd-3 channel (protocol.ts).
 */
import { Socket } from 'node:net';
import { createLogger, type Logger } from '../log.js';
import { CHANNEL_FD, errorMessage, LineChannel, type ChildMessage, type ParentMessage, type RootlessRunRequest } from './protocol.js';
import { runRootlessChild } from './rootless-child.js';

/** Exit status when the helper fails before the container exits (podman and docker use 125 for their own errors). */
const EXIT_HELPER_FAILED = 125;

function main(): void {
  const abort = new AbortController();
  let state: 'waiting' | 'running' | 'done' = 'waiting';
  const socket = new Socket({ fd: CHANNEL_FD, readable: true, writable: true });

  const run = async (request: RootlessRunRequest): Promise<void> => {
    let logger: Logger | undefined;
    try {
      logger = createLogger(request.logLevel, 'hostpull', request.logFormat);
      const result = await runRootlessChild(request, {
        signal: abort.signal,
        logger,
        onMounted: () => void channel.send({ type: 'mounted' }),
      });
      await channel.send({ type: 'exit', exitCode: result.exitCode, ...(result.signal ? { signal: result.signal } : {}) });
      process.exitCode = result.exitCode;
    } catch (err) {
      logger?.debug({ err }, 'rootless helper failed');
      await channel.send(errorMessage(err));
      process.exitCode = EXIT_HELPER_FAILED;
    } finally {
      state = 'done';
      channel.close();
    }
  };

  const channel = new LineChannel<ParentMessage, ChildMessage>(
    socket,
    (m) => {
      if (m.type === 'run' && state === 'waiting') {
        state = 'running';
        void run(m.request);
      } else if (m.type === 'abort') {
        abort.abort(new Error('aborted by the parent hostpull process'));
      }
    },
    (err) => abort.abort(err),
  );
  // The parent gone (killed -9, crashed) means nobody will clean up after us or read the exit
  // status: stop the container now, so it never outlives the `hostpull run` that started it.
  socket.once('close', () => {
    if (state === 'running') abort.abort(new Error('the parent hostpull process went away'));
  });
}

main();
