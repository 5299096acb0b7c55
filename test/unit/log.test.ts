import { describe, expect, it } from 'vitest';
import { createLogger, textLine } from '../../src/log.js';

/** A line as pino writes it (what the text destination is handed). */
const pinoLine = (fields: Record<string, unknown>) => `${JSON.stringify({ level: 40, time: 1796289400081, pid: 77, name: 'hostpull', ...fields })}\n`;

describe('log lines as text', () => {
  it('lead with the name and the level, then the message and each field as logfmt', () => {
    expect(textLine(pinoLine({ registry: '127.0.0.1:1', retryInMs: 190, inARow: 1, msg: 'registry 127.0.0.1:1 failed; retrying for up to 1.0s' }))).toBe(
      'hostpull: warning: registry 127.0.0.1:1 failed; retrying for up to 1.0s registry=127.0.0.1:1 retryInMs=190 inARow=1\n',
    );
  });

  it('quote a value with a space, a quote, an equals sign or a backslash, and an empty one', () => {
    const line = textLine(pinoLine({ a: 'two words', b: 'say "hi"', c: 'k=v', d: 'C:\\x', e: '', f: 'plain', msg: 'm' }));
    expect(line).toBe('hostpull: warning: m a="two words" b="say \\"hi\\"" c="k=v" d="C:\\\\x" e="" f=plain\n');
  });

  it('give an error its message, and other objects and arrays as compact JSON', () => {
    const err = { type: 'Error', message: 'connection failed (ECONNREFUSED)', stack: 'Error: connection failed\n    at x' };
    expect(textLine(pinoLine({ err, spans: [1, 2], where: { layer: 'sha256:ab' }, ok: true, none: null, msg: 'failed' }))).toBe(
      'hostpull: warning: failed err="connection failed (ECONNREFUSED)" spans=[1,2] where="{\\"layer\\":\\"sha256:ab\\"}" ok=true none=null\n',
    );
  });

  it('name each level, keep the logger name and do without a message', () => {
    const words = [10, 20, 30, 40, 50, 60].map((level) => textLine(pinoLine({ level, name: 'hostpull-lazy', n: 1 })));
    expect(words).toEqual(['trace', 'debug', 'info', 'warning', 'error', 'fatal'].map((w) => `hostpull-lazy: ${w}: n=1\n`));
  });

  it('pass a line that is not JSON as it came', () => {
    expect(textLine('not json\n')).toBe('not json\n');
  });
});

describe('createLogger', () => {
  it('says its format, and its children keep it', () => {
    const text = createLogger('warn', 'hostpull', 'text');
    expect(text.format).toBe('text');
    expect(text.child({ layer: 'x' }).format).toBe('text');
    expect(text.child({ layer: 'x' }).child({ span: 1 }).format).toBe('text');
    expect(createLogger('warn').format).toBe('json');
  });
});
