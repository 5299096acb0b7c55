/**
 * `WWW-Authenticate` parsing (RFC 9110 §11.6.1). A header may hold several challenges
 * (`Basic realm="x", Bearer realm="y",service="z"`), and quoted values may contain commas
 * (`scope="repository:a:pull,push"`) and backslash escapes, so a split on `,` is not enough.
 */
export interface AuthChallenge {
  /** Lower-cased scheme: `bearer`, `basic`… */
  scheme: string;
  /** Parameter names lower-cased; values unquoted. */
  params: Record<string, string>;
}

const TOKEN_CHAR = /[!#$%&'*+.^_`|~0-9A-Za-z-]/;

export function parseWwwAuthenticate(header: string | string[] | undefined): AuthChallenge[] {
  if (header === undefined) return [];
  if (Array.isArray(header)) return header.flatMap((h) => parseWwwAuthenticate(h));
  const s = header;
  let i = 0;
  const out: AuthChallenge[] = [];
  const skipWs = (): void => {
    while (i < s.length && (s[i] === ' ' || s[i] === '\t')) i++;
  };
  const readToken = (): string => {
    const start = i;
    while (i < s.length && TOKEN_CHAR.test(s[i]!)) i++;
    return s.slice(start, i);
  };
  const readQuoted = (): string => {
    // s[i] is the opening quote.
    i++;
    let v = '';
    while (i < s.length && s[i] !== '"') {
      if (s[i] === '\\' && i + 1 < s.length) i++;
      v += s[i];
      i++;
    }
    i++; // closing quote (or end of input on a malformed header)
    return v;
  };

  while (i < s.length) {
    skipWs();
    while (i < s.length && s[i] === ',') {
      i++;
      skipWs();
    }
    if (i >= s.length) break;
    const scheme = readToken();
    if (!scheme) {
      i++; // skip a stray character rather than loop forever
      continue;
    }
    const challenge: AuthChallenge = { scheme: scheme.toLowerCase(), params: {} };
    out.push(challenge);
    // Parameters: name=value pairs separated by commas, until a token not followed by `=`
    // (which starts the next challenge).
    for (;;) {
      skipWs();
      const save = i;
      const name = readToken();
      skipWs();
      if (!name || s[i] !== '=') {
        // The next challenge's scheme (or a token68 we do not use): rewind and stop.
        i = save;
        break;
      }
      i++; // '='
      skipWs();
      const value = s[i] === '"' ? readQuoted() : readToken();
      challenge.params[name.toLowerCase()] = value;
      skipWs();
      if (s[i] === ',') {
        i++;
        continue;
      }
      break;
    }
  }
  return out;
}
