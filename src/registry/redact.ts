/**
 * Credentials must never reach an error message or a log line (pnpm's FetchError habit): URLs lose
 * their userinfo, and query values that look like secrets (pre-signed object-storage redirects carry
 * `X-Amz-Signature`, `sig`, `token`…) are replaced.
 */
const SECRET_QUERY_KEY = /sig|signature|token|credential|auth|key|pass|secret/i;

export function redactUrl(input: string | URL): string {
  let url: URL;
  try {
    url = new URL(String(input));
  } catch {
    // Not a URL: drop anything that looks like `user:pass@`.
    return String(input).replace(/\/\/[^/@\s]*@/g, '//');
  }
  url.username = '';
  url.password = '';
  for (const key of [...url.searchParams.keys()]) {
    if (SECRET_QUERY_KEY.test(key)) url.searchParams.set(key, 'REDACTED');
  }
  return url.toString();
}
