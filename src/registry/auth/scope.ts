/**
 * Token scopes (`repository:<name>:<actions>`, distribution token-scope docs). When a registry's
 * challenge asks for a scope we already cover (it says `pull` where we asked `pull,push`), the
 * actions are merged per resource so the token cache key stays the one we use up front.
 */
export function mergeScopes(...lists: readonly (readonly string[])[]): string[] {
  const resources = new Map<string, Set<string>>();
  const verbatim: string[] = [];
  for (const scope of lists.flat()) {
    const first = scope.indexOf(':');
    const last = scope.lastIndexOf(':');
    if (first <= 0 || last <= first) {
      if (!verbatim.includes(scope)) verbatim.push(scope);
      continue;
    }
    const resource = scope.slice(0, last);
    let actions = resources.get(resource);
    if (!actions) resources.set(resource, (actions = new Set()));
    for (const a of scope.slice(last + 1).split(',')) if (a) actions.add(a);
  }
  return [...[...resources].map(([resource, actions]) => `${resource}:${[...actions].join(',')}`), ...verbatim];
}
