/** The named filters of a list as the address holds them ('' when absent). */
export function filtersOf<K extends string>(params: URLSearchParams, names: readonly K[]): Record<K, string> {
  return Object.fromEntries(names.map((n) => [n, params.get(n) ?? ''])) as Record<K, string>;
}

/**
 * The address after `changes` (an empty value removes its key). Another filter is another list,
 * so its page keys (`pageKeys`) start over unless the change is itself a page key; the other
 * lists of the same screen keep theirs.
 */
export function withChanges(prev: URLSearchParams, changes: Record<string, string>, pageKeys: readonly string[] = ['cursor']): URLSearchParams {
  const next = new URLSearchParams(prev);
  for (const [k, v] of Object.entries(changes)) {
    if (v) next.set(k, v);
    else next.delete(k);
  }
  if (!Object.keys(changes).some((k) => pageKeys.includes(k))) for (const k of pageKeys) next.delete(k);
  return next;
}
