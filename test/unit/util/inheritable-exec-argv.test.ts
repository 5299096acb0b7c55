import { describe, expect, it } from 'vitest';
import { inheritableExecArgv } from '../../../src/util/inheritable-exec-argv.js';

describe('inheritableExecArgv', () => {
  it('drops the options that start Node from a snapshot, in both spellings, and keeps the rest in order', () => {
    expect(inheritableExecArgv(['--max-old-space-size=512', '--snapshot-blob', '/x/hostpull.blob', '--enable-source-maps'])).toEqual(['--max-old-space-size=512', '--enable-source-maps']);
    expect(inheritableExecArgv(['--snapshot-blob=/x/hostpull.blob', '--build-snapshot', '--inspect'])).toEqual(['--inspect']);
    expect(inheritableExecArgv([])).toEqual([]);
  });
});
