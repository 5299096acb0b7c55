/**
 * relayUntilWritten: a body that breaks mid-transfer loses nothing that arrived, because the
 * error reaches the pipeline only once the writer has kept every byte received.
 */
import { createWriteStream, statSync } from 'node:fs';
import { join } from 'node:path';
import { Readable, Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { describe, expect, it } from 'vitest';
import { relayUntilWritten } from '../../../src/pull/relay-until-written.js';
import { useTempDir } from '../../helpers/tmp.js';

const tmp = useTempDir('relay');

/** A body that delivers `chunks` at once, then fails like a connection reset. */
function breakingBody(chunks: Buffer[]): Readable {
  let i = 0;
  return new Readable({
    read() {
      if (i < chunks.length) this.push(chunks[i++]);
      else this.destroy(Object.assign(new Error('other side closed'), { code: 'UND_ERR_SOCKET' }));
    },
  });
}


describe('relayUntilWritten', () => {
  it('passes the error on only after every received byte is in the file', async () => {
    const dir = await tmp();
    const path = join(dir, 'partial');
    const chunks = Array.from({ length: 64 }, (_, i) => Buffer.alloc(16 * 1024, i));
    const file = createWriteStream(path);
    let kept = 0;
    const slowFile = new Writable({
      highWaterMark: 1 << 20,
      write(chunk: Buffer, _enc, cb) {
        setTimeout(
          () =>
            file.write(chunk, (err) => {
              if (!err) kept += chunk.length;
              cb(err);
            }),
          1,
        );
      },
    });
    const err = await pipeline(relayUntilWritten(breakingBody(chunks), () => kept), slowFile).catch((e: unknown) => e);
    expect((err as { code?: string }).code).toBe('UND_ERR_SOCKET');
    expect(statSync(path).size).toBe(64 * 16 * 1024);
    file.close();
  });

  it('a body that breaks before anything reads the relay: no unheard error, and a pipeline attached later fails with it', async () => {
    const body = new Readable({ read() {} });
    const relay = relayUntilWritten(body, () => 0);
    body.destroy(Object.assign(new Error('the client closed the connection'), { code: 'CLIENT_GONE' }));
    // What fetchLayer awaits between the request and its pipeline; an unheard 'error' would be
    // an uncaught exception here, failing the test.
    await new Promise((r) => setTimeout(r, 50));
    expect(relay.destroyed).toBe(true);
    const err = await pipeline(relay, new Writable({ write: (_c, _e, cb) => cb() })).catch((e: unknown) => e);
    expect((err as { code?: string }).code).toBe('CLIENT_GONE');
  });

  it('a pipeline that fails on its own destroys the body at once', async () => {
    let destroyed = false;
    const body = new Readable({ read() {} });
    body.push(Buffer.alloc(1000));
    body.once('close', () => (destroyed = true));
    const failing = new Writable({ write: (_c, _e, cb) => cb(new Error('disk full')) });
    const err = await pipeline(relayUntilWritten(body, () => 0), failing).catch((e: unknown) => e);
    expect((err as Error).message).toBe('disk full');
    await new Promise((r) => setImmediate(r));
    expect(destroyed).toBe(true);
  });
});
