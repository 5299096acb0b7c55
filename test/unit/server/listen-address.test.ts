import { describe, expect, it } from 'vitest';
import { listenAddress } from '../../../src/cli/commands/serve.js';

describe('hostpull serve --listen', () => {
  const defaults = { host: '127.0.0.1', port: '5055' };

  it('takes --host and --port when --listen is absent', () => {
    expect(listenAddress(defaults)).toEqual({ host: '127.0.0.1', port: 5055 });
    expect(listenAddress({ host: '0.0.0.0', port: '0' })).toEqual({ host: '0.0.0.0', port: 0 });
  });

  it('splits HOST:PORT, a bracketed IPv6 address, and :PORT (default host)', () => {
    expect(listenAddress({ ...defaults, listen: '0.0.0.0:5000' })).toEqual({ host: '0.0.0.0', port: 5000 });
    expect(listenAddress({ ...defaults, listen: '[::1]:6000' })).toEqual({ host: '::1', port: 6000 });
    expect(listenAddress({ ...defaults, listen: ':7000' })).toEqual({ host: '127.0.0.1', port: 7000 });
  });

  it('refuses what is not HOST:PORT or not a port, saying what it expected', () => {
    for (const listen of ['5000', 'localhost', 'a:b', '::1:5000', 'host:65536']) {
      expect(() => listenAddress({ ...defaults, listen }), listen).toThrow(/--listen|port/);
    }
    expect(() => listenAddress({ host: '127.0.0.1', port: '-1' })).toThrow(/not a port number/);
    expect(() => listenAddress({ host: '127.0.0.1', port: '5e3' })).toThrow(/not a port number/);
  });
});
