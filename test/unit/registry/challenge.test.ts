import { describe, expect, it } from 'vitest';
import { mergeScopes } from '../../../src/registry/auth/scope.js';
import { parseWwwAuthenticate } from '../../../src/registry/auth/challenge.js';

describe('parseWwwAuthenticate', () => {
  it('parses a Bearer challenge whose scope holds a quoted comma', () => {
    const [c, ...rest] = parseWwwAuthenticate(
      'Bearer realm="https://auth.example.com/token",service="registry.example.com",scope="repository:pkg/jdk:pull,push"',
    );
    expect(rest).toEqual([]);
    expect(c).toEqual({
      scheme: 'bearer',
      params: { realm: 'https://auth.example.com/token', service: 'registry.example.com', scope: 'repository:pkg/jdk:pull,push' },
    });
  });

  it('splits several challenges and lower-cases schemes and names', () => {
    const cs = parseWwwAuthenticate('Basic realm="Registry Realm", BEARER Realm="http://127.0.0.1:1/t", Service=svc');
    expect(cs).toEqual([
      { scheme: 'basic', params: { realm: 'Registry Realm' } },
      { scheme: 'bearer', params: { realm: 'http://127.0.0.1:1/t', service: 'svc' } },
    ]);
  });

  it('handles escapes, spaces around = and an array of header values', () => {
    const cs = parseWwwAuthenticate(['Bearer realm = "a\\"b" , error="invalid_token"', 'Basic']);
    expect(cs).toEqual([
      { scheme: 'bearer', params: { realm: 'a"b', error: 'invalid_token' } },
      { scheme: 'basic', params: {} },
    ]);
  });

  it('returns nothing for a missing or empty header', () => {
    expect(parseWwwAuthenticate(undefined)).toEqual([]);
    expect(parseWwwAuthenticate('')).toEqual([]);
  });
});

describe('mergeScopes', () => {
  it('merges actions per resource and keeps unknown scopes', () => {
    expect(mergeScopes(['repository:a:pull,push'], ['repository:a:pull', 'repository:b:pull', 'registry:catalog:*', 'odd'])).toEqual([
      'repository:a:pull,push',
      'repository:b:pull',
      'registry:catalog:*',
      'odd',
    ]);
    expect(mergeScopes(['repository:localhost:5000/x:pull'], ['repository:localhost:5000/x:push'])).toEqual(['repository:localhost:5000/x:pull,push']);
  });
});
