import { PassThrough, type Readable } from 'node:stream';

/**
 * How long a broken transfer waits for the bytes it already received to reach the ingest file
 * before it gives up on them (they are then fetched again on resume).
 */
const CATCH_UP_MS = 10_000;
const POLL_MS = 5;

/**
 * Relays a blob response body so that a connection breaking mid-body loses nothing that already
 * arrived. A pipeline destroys every stage on the first error, and with them the bytes in their
 * buffers (the ingest writer, the tee and the unpacker's input hold up to 1 MiB each), which the
 * Range resume would then fetch a second time. Here the body's error is held back until the
 * ingest writer has kept every byte received from `body` (`kept()`: bytes it wrote, or holds in
 * a buffer that its destroy writes out first), then passed on; the resume then starts exactly
 * where the registry stopped. A pipeline that fails or is aborted on its own destroys the relay,
 * which destroys the body (freeing the connection).
 */
export function relayUntilWritten(body: Readable, kept: () => number): Readable {
  let received = 0;
  const relay = new PassThrough();
  body.on('data', (chunk: Buffer) => {
    received += chunk.length;
    if (!relay.write(chunk)) body.pause();
  });
  relay.on('drain', () => body.resume());
  body.once('end', () => relay.end());
  body.once('error', (err) => {
    const deadline = Date.now() + CATCH_UP_MS;
    const check = () => {
      if (relay.destroyed) return;
      if (kept() >= received || Date.now() > deadline) relay.destroy(err);
      else setTimeout(check, POLL_MS);
    };
    check();
  });
  relay.once('close', () => body.destroy());
  // The caller may attach its pipeline only after an await (fetchLayer stages the layer's
  // directory first), and the body may break meanwhile: a daemon whose client went away during
  // that await (the request's abort destroys the body) died of the relay's unheard 'error'. Heard
  // here, the error stays on the relay (`errored`), and a pipeline attached later fails with it.
  relay.on('error', () => undefined);
  return relay;
}
