import { lstat, mkdir, unlink } from 'node:fs/promises';
import { connect } from 'node:net';
import { dirname } from 'node:path';
import { HostpullError, errnoCode } from '../errors.js';

/** True when something accepts connections on the unix socket at `path`. */
function socketAnswers(path: string, timeoutMs = 1_000): Promise<boolean> {
  return new Promise((resolve) => {
    const sock = connect({ path });
    const done = (answers: boolean) => {
      sock.destroy();
      resolve(answers);
    };
    sock.setTimeout(timeoutMs, () => done(true)); // accepted but slow: something is there
    sock.once('connect', () => done(true));
    sock.once('error', () => done(false));
  });
}

/**
 * Makes `path` free for listen(): creates its directory, and removes a socket file left by a
 * daemon that died — only if it is a socket and nothing answers on it, so a second daemon never
 * steals the socket of a running one, and a regular file someone put there is never deleted.
 */
export async function prepareSocketPath(path: string): Promise<void> {
  await mkdir(dirname(path), { recursive: true, mode: 0o755 });
  let st;
  try {
    st = await lstat(path);
  } catch (err) {
    if (errnoCode(err) === 'ENOENT') return;
    throw err;
  }
  if (!st.isSocket()) {
    throw new HostpullError('SOCKET_PATH_IN_USE', `${path} exists and is not a socket`, { hint: 'remove it, or pass another --socket' });
  }
  if (await socketAnswers(path)) {
    throw new HostpullError('DAEMON_RUNNING', `another daemon answers on ${path}`, { hint: 'stop it first (systemctl stop hostpull), or pass another --socket' });
  }
  await unlink(path).catch((err) => {
    if (errnoCode(err) !== 'ENOENT') throw err;
  });
}
